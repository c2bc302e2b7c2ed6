//! The rest of a sign-in once its state checked out: exchange, profile, policy, then a sign-in
//! (upsert, JWT, session) or a link.

use crate::audit::{AuthEvent, AuthEventKind, ClientInfo};
use crate::flow::Flow;
use crate::jwt::{Claims, Identity, IssuedJwt};
use crate::login_error::LoginError;
use crate::measure;
use crate::provider::{FlowParams, Profile, TokenSet};
use crate::store::{sign_in, LinkOutcome, NewSession};

use super::AuthService;

impl AuthService {
    /// The rest of a login once the state checked out: code exchange, profile, policy, then
    /// either a sign-in (upsert, JWT, session) or, for a link flow, a link to the signed-in user.
    pub(crate) async fn complete_login(
        &self,
        provider: &str,
        code: &str,
        flow: &Flow,
        current: Option<&Claims>,
        client: &ClientInfo,
    ) -> Result<Option<IssuedJwt>, LoginError> {
        let entry = self
            .providers
            .get(provider)
            .ok_or(LoginError::Flow(crate::flow::FlowError::Foreign))?;
        // A link flow belongs to the user who started it, still signed in.
        if let Some(link_user) = flow.link_user {
            if current.and_then(Claims::user_id) != Some(link_user) {
                return Err(LoginError::LinkSessionChanged);
            }
        }
        let params = FlowParams {
            state: &flow.state,
            pkce_verifier: &flow.verifier,
            nonce: &flow.nonce,
            form_user: flow.form_user.as_deref(),
        };
        let tokens = entry
            .client
            .exchange_code(code, &params)
            .await
            .and_then(TokenSet::storable)
            .map_err(LoginError::Provider)?;
        let profile = entry
            .client
            .profile(&tokens, &params)
            .await
            .and_then(Profile::storable)
            .map_err(LoginError::Provider)?;
        self.policy
            .allow(&sign_in(provider, &profile))
            .await
            .map_err(LoginError::PolicyDenied)?;
        if let Some(user_id) = flow.link_user {
            return match self
                .store
                .link_identity(user_id, provider, &profile, &tokens)
                .await
                .map_err(LoginError::Store)?
            {
                LinkOutcome::Linked => {
                    measure::login(provider, "linked");
                    let event = AuthEvent::new(AuthEventKind::Linked, client)
                        .user(Some(user_id))
                        .provider(Some(provider))
                        .session(current.map(|c| c.jti.as_str()));
                    self.audit().emit(event).await;
                    Ok(None)
                }
                LinkOutcome::TakenByOther => Err(LoginError::Conflict("identity_linked_elsewhere")),
                LinkOutcome::ProviderAlreadyLinked => {
                    Err(LoginError::Conflict("provider_already_linked"))
                }
            };
        }
        // The JWT's session is recorded with the login, in one transaction (one statement for a
        // returning user on PostgreSQL).
        let (jti, iat, expires_at) = self.jwt.next_session();
        let session = NewSession {
            jti: jti.clone(),
            created_at: iat,
            expires_at,
        };
        let (user, created) = self
            .store
            .upsert_login(
                provider,
                &profile,
                &tokens,
                &entry.options,
                &*self.policy,
                &session,
            )
            .await
            .map_err(LoginError::Store)?;
        let identity = Identity {
            sub: user.id.to_string(),
            provider: Some(provider.to_owned()),
            name: user.name.clone(),
            email: user.email.clone(),
            avatar_url: user.avatar_url.clone(),
            extra: self.policy.extra_claims(&user, provider),
        };
        let jwt = self.jwt.issue_as(identity, jti, iat).map_err(|e| {
            log::error!("social_auth: {e}");
            LoginError::Token
        })?;
        measure::login(provider, if created { "new" } else { "returning" });
        let event = AuthEvent::new(AuthEventKind::SignIn { new_user: created }, client)
            .user(Some(user.id))
            .provider(Some(provider))
            .session(Some(&jwt.claims.jti));
        self.audit().emit(event).await;
        Ok(Some(jwt))
    }
}
