//! Parsing of the connection file a Jupyter client writes before launching the kernel.

use serde::Deserialize;
use std::path::Path;

/// The contents of a connection file (`kernel-*.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionInfo {
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default = "default_ip")]
    pub ip: String,
    pub shell_port: u16,
    pub iopub_port: u16,
    pub stdin_port: u16,
    pub control_port: u16,
    pub hb_port: u16,
    #[serde(default)]
    pub key: String,
    #[serde(default = "default_scheme")]
    pub signature_scheme: String,
    /// The kernel's CurveZMQ key pair (Z85 text), written by jupyter_client 8.10+ when the
    /// kernelspec declares `supported_encryption: ["curve"]`: every socket is then a CURVE
    /// server with these keys (clients use the same pair, as jupyter_client does).
    #[serde(default)]
    pub curve_publickey: Option<String>,
    #[serde(default)]
    pub curve_secretkey: Option<String>,
}

/// The CurveZMQ key pair of a connection file.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveKeys {
    pub public: String,
    pub secret: String,
}

fn default_transport() -> String {
    "tcp".into()
}
fn default_ip() -> String {
    "127.0.0.1".into()
}
fn default_scheme() -> String {
    "hmac-sha256".into()
}

impl ConnectionInfo {
    /// Reads and validates a connection file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read connection file {}: {e}", path.display()))?;
        Self::from_json(&text)
            .map_err(|e| anyhow::anyhow!("invalid connection file {}: {e}", path.display()))
    }

    /// Parses a connection file's JSON text.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let info: ConnectionInfo = serde_json::from_str(text)?;
        if !info.key.is_empty() && info.signature_scheme != "hmac-sha256" {
            anyhow::bail!(
                "unsupported signature scheme {:?} (only hmac-sha256)",
                info.signature_scheme
            );
        }
        if info.transport != "tcp" && info.transport != "ipc" {
            anyhow::bail!("unsupported transport {:?} (tcp or ipc)", info.transport);
        }
        info.curve_keys()?;
        Ok(info)
    }

    /// The CurveZMQ keys, if the file has them. One key without the other is an error, not
    /// a reason to fall back to plain text.
    pub fn curve_keys(&self) -> anyhow::Result<Option<CurveKeys>> {
        match (&self.curve_publickey, &self.curve_secretkey) {
            (None, None) => Ok(None),
            (Some(public), Some(secret)) => {
                for (name, key) in [("curve_publickey", public), ("curve_secretkey", secret)] {
                    // Z85 encodes the 32-byte keys in 40 characters.
                    if key.len() != 40 || !key.is_ascii() {
                        anyhow::bail!("{name} must be a 40-character Z85 key");
                    }
                }
                Ok(Some(CurveKeys {
                    public: public.clone(),
                    secret: secret.clone(),
                }))
            }
            _ => anyhow::bail!("curve_publickey and curve_secretkey must be given together"),
        }
    }

    /// The ZeroMQ endpoint for one channel port, following jupyter_client's conventions:
    /// `tcp://ip:port`, or for ipc `ipc://ip-port` (the `ip` field is a path prefix there).
    pub fn endpoint(&self, port: u16) -> String {
        if self.transport == "ipc" {
            format!("ipc://{}-{}", self.ip, port)
        } else {
            format!("tcp://{}:{}", self.ip, port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_ipc_files() {
        let tcp = ConnectionInfo::from_json(
            r#"{"shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5,
                "ip":"127.0.0.1","key":"k","transport":"tcp","signature_scheme":"hmac-sha256",
                "kernel_name":"rhai"}"#,
        )
        .unwrap();
        assert_eq!(tcp.endpoint(tcp.hb_port), "tcp://127.0.0.1:5");
        let ipc = ConnectionInfo::from_json(
            r#"{"shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5,
                "ip":"/tmp/kernel","key":"","transport":"ipc"}"#,
        )
        .unwrap();
        assert_eq!(ipc.endpoint(ipc.shell_port), "ipc:///tmp/kernel-1");
    }

    #[test]
    fn rejects_unknown_scheme_and_transport() {
        let base = r#""shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5"#;
        assert!(ConnectionInfo::from_json(&format!(
            r#"{{{base},"key":"k","signature_scheme":"hmac-md5"}}"#
        ))
        .is_err());
        assert!(ConnectionInfo::from_json(&format!(r#"{{{base},"transport":"udp"}}"#)).is_err());
    }

    #[test]
    fn curve_keys_come_in_pairs() {
        let base = r#""shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5"#;
        let key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let both = ConnectionInfo::from_json(&format!(
            r#"{{{base},"curve_publickey":"{key}","curve_secretkey":"{key}"}}"#
        ))
        .unwrap();
        assert_eq!(
            both.curve_keys().unwrap().map(|k| k.public),
            Some(key.to_string())
        );
        let none = ConnectionInfo::from_json(&format!("{{{base}}}")).unwrap();
        assert_eq!(none.curve_keys().unwrap(), None);
        assert!(
            ConnectionInfo::from_json(&format!(r#"{{{base},"curve_publickey":"{key}"}}"#)).is_err()
        );
        assert!(ConnectionInfo::from_json(&format!(
            r#"{{{base},"curve_publickey":"short","curve_secretkey":"{key}"}}"#
        ))
        .is_err());
    }
}
