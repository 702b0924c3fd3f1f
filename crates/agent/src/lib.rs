//! Tandem agent runtime (interface stub; the implementation lands next).

use std::path::PathBuf;

use tandem_proto::state::AgentState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CredentialStoreKind {
    #[default]
    Keyring,
    File,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    pub credential_store: CredentialStoreKind,
}

impl AgentConfig {
    /// `TANDEM_DATA_DIR`, else the user's data dir + `tandem`.
    pub fn from_env() -> AgentConfig {
        AgentConfig { data_dir: PathBuf::from("/tmp/tandem"), credential_store: CredentialStoreKind::Keyring }
    }
}

#[derive(Clone)]
pub struct Agent {
    state: watch::Sender<AgentState>,
}

impl Agent {
    pub async fn open(_config: AgentConfig) -> Result<Agent, AgentError> {
        Ok(Agent { state: watch::Sender::new(AgentState::default()) })
    }
    pub fn subscribe(&self) -> watch::Receiver<AgentState> {
        self.state.subscribe()
    }
    pub fn state(&self) -> AgentState {
        self.state.borrow().clone()
    }
    pub async fn check_now(&self) -> Result<AgentState, AgentError> {
        Ok(self.state())
    }
    pub async fn run(&self, shutdown: CancellationToken) {
        shutdown.cancelled().await;
    }
}
