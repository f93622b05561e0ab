//! How the binding proxy, when it serves over TCP (in Kubernetes, in pods of its own), knows who talks
//! to it: every request must carry the executor pod's projected service-account token for the proxy's
//! own audience (`mcpguard.io/proxy/<namespace>/<policy>`), reviewed with TokenReview and naming the
//! policy's executor service account. A pod of another policy (its token has another audience and
//! another account), or any pod that got past the network, is refused. Callers' tokens are reviewed
//! here too, for the policy's caller audience: the executor pod cannot reach the API server.

use std::{net::IpAddr, path::PathBuf};

use mcp_guard_api::auth::{AuthConfig, Authenticator, TokenReviewConfig};
use mcp_guard_binding_proxy::service::PeerAuth;
use mcp_guard_crds::Callers;

/// The proxy's view of its peers.
#[derive(Debug)]
pub struct TokenReviewPeers {
    executor: Authenticator,
    callers: Option<Authenticator>,
}

/// Where to review tokens.
#[derive(Debug, Clone)]
pub struct ReviewSetup {
    pub api_server: String,
    pub token_file: PathBuf,
    pub ca: Option<PathBuf>,
}

impl ReviewSetup {
    fn config(&self, audience: &str) -> TokenReviewConfig {
        crate::serve::token_review_config(
            self.api_server.clone(),
            audience.to_string(),
            &self.token_file,
            self.ca.as_ref(),
        )
    }
}

impl TokenReviewPeers {
    /// Admit requests with a token for `executor_audience` that names `executor_identity`; review callers
    /// for `caller_audience` (when given) against the config's `callers`.
    pub fn new(
        setup: &ReviewSetup,
        executor_audience: &str,
        executor_identity: &str,
        caller_audience: Option<&str>,
        callers: &Callers,
    ) -> Result<Self, String> {
        let executor = Authenticator::new(AuthConfig {
            token_review: Some(setup.config(executor_audience)),
            allowed_callers: Some(vec![executor_identity.to_string()]),
            ..Default::default()
        })?;
        let callers = caller_audience
            .map(|audience| {
                Authenticator::new(AuthConfig {
                    token_review: Some(setup.config(audience)),
                    allowed_callers: (!callers.execute.is_empty()).then(|| callers.execute.clone()),
                    discovery_callers: callers.discover.clone(),
                    ..Default::default()
                })
            })
            .transpose()?;
        Ok(TokenReviewPeers { executor, callers })
    }
}

#[tonic::async_trait]
impl PeerAuth for TokenReviewPeers {
    async fn executor(&self, authorization: Option<&str>, peer: Option<IpAddr>) -> Result<(), tonic::Status> {
        let Some(authorization) = authorization else {
            return Err(tonic::Status::unauthenticated(
                "the binding proxy admits only its executor: send the executor's token for the proxy",
            ));
        };
        match self.executor.authenticate(Some(authorization), None, peer).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(?peer, error = %e, "refused a request that is not from this policy's executor");
                Err(e.into())
            }
        }
    }

    async fn caller(
        &self,
        token: &str,
        peer: Option<IpAddr>,
    ) -> Option<Result<(String, bool), tonic::Status>> {
        let callers = self.callers.as_ref()?;
        Some(
            callers
                .authenticate(Some(&format!("Bearer {token}")), None, peer)
                .await
                .map(|c| (c.name, c.discovery_only))
                .map_err(tonic::Status::from),
        )
    }

    fn reviews_callers(&self) -> bool {
        self.callers.is_some()
    }
}
