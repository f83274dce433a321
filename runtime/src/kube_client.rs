//! The Kubernetes client both programs use.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The given kubeconfig file could not be read or used.
    #[error("loading kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: KubeconfigError,
    },
    /// Neither in-cluster configuration nor a default kubeconfig was found.
    #[error("finding Kubernetes credentials (not in a cluster and no usable kubeconfig)")]
    Infer(#[source] InferConfigError),
    /// The configuration could not be turned into a client (e.g. bad TLS material).
    #[error("creating the Kubernetes client")]
    Build(#[source] kube::Error),
}

/// Makes a client from `kubeconfig` if given, else from the in-cluster service account or
/// the default kubeconfig (`$KUBECONFIG`, `~/.kube/config`). Nothing is sent yet.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let error = |source| ClientError::Kubeconfig {
                path: path.to_owned(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(error)?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(error)?
        }
        None => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    kube::Client::try_from(config).map_err(ClientError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kubeconfig_file_gives_a_client_for_its_server() {
        let path =
            std::env::temp_dir().join(format!("ferrolb-runtime-{}.kubeconfig", std::process::id()));
        std::fs::write(&path, kubeconfig_for("http://127.0.0.1:9")).unwrap();
        let result = client(Some(&path)).await;
        std::fs::remove_file(&path).unwrap();
        let Ok(client) = result else {
            panic!("no client from a valid kubeconfig");
        };
        assert_eq!(client.default_namespace(), "flb-test");
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named() {
        let Err(err) = client(Some(Path::new("/nonexistent/ferrolb.kubeconfig"))).await else {
            panic!("a client from a missing file");
        };
        assert_eq!(
            err.to_string(),
            "loading kubeconfig /nonexistent/ferrolb.kubeconfig"
        );
    }

    /// A minimal kubeconfig for `server`.
    pub(crate) fn kubeconfig_for(server: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test\n  cluster:\n    server: {server}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: flb-test\n\
             users:\n- name: test\n  user: {{}}\n"
        )
    }
}
