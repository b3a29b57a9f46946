//! HMAC-SHA256 signing and constant-time verification of the four JSON frames of a message.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies messages with the connection file's key; an empty key disables signing
/// (the spec's "no authentication" mode), in which case every signature must be empty.
#[derive(Clone)]
pub struct Signer {
    mac: Option<HmacSha256>,
}

impl Signer {
    pub fn new(key: &str) -> Self {
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC accepts keys of any length, so this cannot fail.
            HmacSha256::new_from_slice(key.as_bytes()).ok()
        };
        Signer { mac }
    }

    /// Hex signature of header, parent header, metadata and content (in that order).
    pub fn sign(&self, frames: [&[u8]; 4]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for frame in frames {
                    mac.update(frame);
                }
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Constant-time check of a received hex signature.
    pub fn verify(&self, signature: &[u8], frames: [&[u8]; 4]) -> bool {
        match &self.mac {
            None => signature.is_empty(),
            Some(mac) => {
                let Ok(expected) = hex::decode(signature) else {
                    return false;
                };
                let mut mac = mac.clone();
                for frame in frames {
                    mac.update(frame);
                }
                mac.verify_slice(&expected).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_python_hmac() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'key',b'abcd',hashlib.sha256).hexdigest())"
        let signer = Signer::new("key");
        assert_eq!(
            signer.sign([b"a", b"b", b"c", b"d"]),
            "2a31ec0ee8d878c9eece9fb0df79b3b90b2256240163aa5ee50d176d3d1121f8"
        );
        // Frame boundaries are not part of the digest: the spec signs the concatenation.
        assert_eq!(
            signer.sign([b"ab", b"", b"cd", b""]),
            signer.sign([b"a", b"b", b"c", b"d"])
        );
    }

    #[test]
    fn verifies_and_rejects() {
        let signer = Signer::new("secret");
        let frames: [&[u8]; 4] = [b"{}", b"{}", b"{}", b"{\"code\":\"1\"}"];
        let sig = signer.sign(frames);
        assert!(signer.verify(sig.as_bytes(), frames));
        assert!(!signer.verify(b"", frames));
        assert!(!signer.verify(b"zz", frames));
        let mut wrong = sig.clone().into_bytes();
        wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
        assert!(!signer.verify(&wrong, frames));
        let tampered: [&[u8]; 4] = [b"{}", b"{}", b"{}", b"{\"code\":\"2\"}"];
        assert!(!signer.verify(sig.as_bytes(), tampered));
    }

    #[test]
    fn empty_key_means_no_signature() {
        let signer = Signer::new("");
        assert_eq!(signer.sign([b"a", b"b", b"c", b"d"]), "");
        assert!(signer.verify(b"", [b"a", b"b", b"c", b"d"]));
        assert!(!signer.verify(b"abc", [b"a", b"b", b"c", b"d"]));
    }
}
