//! The proxy's errors, each with its CNI error code.

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The configuration on stdin is not JSON at all.
    #[error("{0}")]
    Decoding(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Environment(String),
    #[error("{0}")]
    Unsupported(String),
    /// A BPF, netlink or filesystem operation failed: what was attempted, and why.
    #[error("{what}: {detail}")]
    Datapath { what: String, detail: String },
    /// CHECK found the attachment not as ADD left it.
    #[error("{0}")]
    NotAsAddedIt(String),
}

impl ProxyError {
    /// The CNI spec's well-known codes (1 incompatible version, 4 environment, 6 decoding,
    /// 7 config); 100+ are the plugin's own.
    pub fn code(&self) -> u32 {
        match self {
            ProxyError::Decoding(_) => 6,
            ProxyError::Environment(_) => 4,
            ProxyError::Config(_) => 7,
            ProxyError::Unsupported(_) => 1,
            ProxyError::Datapath { .. } => 100,
            ProxyError::NotAsAddedIt(_) => 101,
        }
    }

    pub fn datapath(what: impl Into<String>) -> impl FnOnce(String) -> ProxyError {
        let what = what.into();
        move |detail| ProxyError::Datapath { what, detail }
    }
}

pub type Result<T> = std::result::Result<T, ProxyError>;
