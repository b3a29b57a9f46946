"""The official Jupyter kernel conformance suite (jupyter_kernel_test) run against the
installed "rhai" kernelspec. Every sample attribute is set, so no test is skipped."""

import unittest

import jupyter_kernel_test


class RhaiKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "rhai"
    language_name = "rhai"
    file_extension = ".rhai"

    code_hello_world = 'print("hello, world")'
    code_stderr = 'eprint("something went wrong")'

    completion_samples = [
        {"text": "slee", "matches": {"sleep"}},
        {"text": "display_h", "matches": {"display_html"}},
        {"text": 'let greeting = "hi"; greeting.to_up', "matches": {"to_upper"}},
    ]
    complete_code_samples = ["1", 'print("hello, world")', "fn f(x) { x + 1 }", "let x = [1, 2, 3];"]
    incomplete_code_samples = ["fn f(x) {", "let items = [1, 2,", 'print("unterminated', "if true {\n  print(1);"]
    invalid_code_samples = ["let = 5;", "1 +* 2; print(3);", "fn (x) { x }"]

    code_page_something = "sleep?"

    code_generate_error = 'throw "this cell fails"'

    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"abc" + "def"', "result": '"abcdef"'},
        {"code": "[1, 2, 3].len()", "result": "3"},
    ]

    code_display_data = [
        {"code": 'display_html("<b>bold</b>")', "mime": "text/html"},
        {"code": 'display_markdown("# Title")', "mime": "text/markdown"},
        {"code": 'display_svg("<svg xmlns=\\"http://www.w3.org/2000/svg\\"></svg>")', "mime": "image/svg+xml"},
        {"code": "display_json(#{a: 1, b: [true, ()]})", "mime": "application/json"},
        {"code": "display([1, 2, 3])", "mime": "text/html"},
    ]

    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "6 * ?"

    code_inspect_sample = "print"

    code_clear_output = "clear_output()"


if __name__ == "__main__":
    unittest.main()
