"""Reading and driving a JupyterLab page from Playwright: the JavaScript probes of the notebook
and the user's actions (menus, typing into a cell)."""

import re

# True once the notebook shows its `arg` cells and its kernel is up and idle.
NOTEBOOK_READY = """(cells) => {
    const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent);
    return document.querySelectorAll('.jp-Notebook .jp-Cell').length === cells
        && status.some(text => text.trim() === 'Rhai | Idle');
}"""

# True once Run All is over: the kernel is idle, no cell is queued or running, and every code
# cell has an execution count or some cell failed (which stops Run All).
RUN_ALL_OVER = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .map(p => p.textContent.trim());
    const status = document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
    const failed = document.querySelector('.jp-OutputArea-output[data-mime-type*="stderr"]');
    return status === 'idle' && !prompts.includes('[*]:')
        && (prompts.every(p => /^\\[\\d+\\]:$/.test(p)) || failed !== null);
}"""

# The text shown in the outputs under `el`, including the text of SVG images (JupyterLab shows
# an SVG as an <img> with a data: URL).
OUTPUTS_TEXT = """(el) => [...el.querySelectorAll('.jp-OutputArea-output')].map(out => {
    const images = [...out.querySelectorAll('img')].map(img => img.src)
        .filter(src => src.startsWith('data:image/svg+xml'))
        .map(src => {
            const [head, data] = [src.slice(0, src.indexOf(',')), src.slice(src.indexOf(',') + 1)];
            const svg = head.endsWith(';base64')
                ? new TextDecoder().decode(Uint8Array.from(atob(data), c => c.charCodeAt(0)))
                : decodeURIComponent(data);
            return new DOMParser().parseFromString(svg, 'image/svg+xml').documentElement.textContent;
        });
    return [out.textContent, ...images].join('\\n');
}).join('\\n')"""

# The error outputs of the current notebook. JupyterLab renders an error with the same
# stderr mime type as an eprint stream, so the DOM cannot tell them apart: the output model
# (reachable because the server runs with expose_app_in_browser) has the type.
ERROR_OUTPUTS = """() => {
    const errors = [];
    for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
        if (cell.model.type !== 'code') continue;
        for (let i = 0; i < cell.model.outputs.length; i++) {
            const out = cell.model.outputs.get(i).toJSON();
            if (out.output_type === 'error') errors.push(`${out.ename}: ${out.evalue}`);
        }
    }
    return errors;
}"""

# Sets window.kernelRestarted once the current notebook's kernel goes through "restarting".
WATCH_RESTART = """() => {
    window.kernelRestarted = false;
    window.jupyterapp.shell.currentWidget.sessionContext.statusChanged.connect((_, status) => {
        if (status === 'restarting') window.kernelRestarted = true;
    });
}"""


def menu(page, *items):
    """Clicks through the menu bar, e.g. menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{items[0]}$")).click()
    for item in items[1:]:
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def outputs_text(page):
    return page.evaluate(OUTPUTS_TEXT, page.locator(".jp-Notebook").element_handle())


def run_cell(page, index, code):
    """Puts `code` in cell `index` and runs it with Shift+Enter."""
    editor = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
    editor.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")


def cell_output(page, index, pattern, timeout=60_000):
    """Waits until the output of cell `index` matches `pattern`; returns that text."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index).element_handle()
    page.wait_for_function(
        f"([el, re]) => new RegExp(re).test(({OUTPUTS_TEXT})(el))", arg=[cell, pattern], timeout=timeout
    )
    return page.evaluate(OUTPUTS_TEXT, cell)


def wait_idle(page, timeout=60_000):
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout)
