//! Microsoft Entra ID: OpenID Connect on `{authority}/{tenant}/v2.0`, with the templated
//! multi-tenant issuer checked against each token's own `tid`, tenant rules
//! (`organizations`, `consumers`, `allowed_tenants`), users keyed on (`tid`, `oid`), and an
//! email that never vouches.

use serde::Deserialize;

use super::oauth2::TokenAuth;
use super::oidc::{Offline, Oidc, OidcSettings, Quirks, Subject, STANDARD};
use super::{ProviderContext, ProviderError};
use crate::config::ConfigError;
use crate::secret::Secret;

/// The placeholder of Microsoft's multi-tenant issuer, `…/{tenantid}/v2.0`.
pub(crate) const TENANT_TEMPLATE: &str = "{tenantid}";

/// The tenant of personal Microsoft accounts (`consumers`).
pub(crate) const CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Microsoft's quirks on top of the specification.
const MICROSOFT: Quirks = Quirks {
    // `offline_access` and `prompt=consent`, as the specification says.
    offline: Offline::Scope,
    // `sub` is pairwise (per app); `oid` is the user's object id in `tid`.
    subject: Subject::TenantObject,
    // "isn't guaranteed to be correct and is mutable over time" (nOAuth): never links.
    vouches_for_email: false,
    // Graph's `…/me/photo/$value` needs the access token: not an image a browser loads.
    picture: false,
    // Its refresh documentation sends the scopes again.
    refresh_scope: true,
    ..STANDARD
};

/// A `kind = "microsoft"` table.
///
/// ```toml
/// [default.social_auth.providers.microsoft]
/// client_id = "00000000-0000-0000-0000-000000000000"   # the application (client) id
/// client_secret = "…"
/// tenant = "common"        # or "organizations", "consumers", a tenant id or domain
/// allowed_tenants = []     # tenant ids that may sign in; empty: any the tenant class allows
/// authority = "https://login.microsoftonline.com"
/// offline = false          # true: ask for `offline_access` (a refresh token)
/// token_auth = "basic"     # or "post"; default: what discovery advertises
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MicrosoftSettings {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    tenant: Option<String>,
    #[serde(default)]
    allowed_tenants: Vec<String>,
    authority: Option<String>,
    #[serde(default)]
    offline: bool,
    token_auth: Option<TokenAuth>,
}

/// Which tenants a table's `tenant` lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TenantClass {
    /// `common`: work, school and personal accounts.
    Common,
    /// `organizations`: work and school accounts, not personal ones.
    Organizations,
    /// `consumers`: personal accounts only.
    Consumers,
    /// One tenant, by id.
    Id(String),
    /// One tenant, by one of its domain names (discovery names its id).
    Domain,
}

/// Microsoft's tenant rules for one table: what discovery's issuer must be, and which `tid`s
/// may sign in.
#[derive(Debug, Clone)]
pub(crate) struct Tenancy {
    /// The table's `tenant`, as configured.
    pub(crate) tenant: String,
    class: TenantClass,
    /// `{authority}/`.
    prefix: String,
    /// Lower-case tenant ids; empty: any.
    allowed: Vec<String>,
}

/// A tenant id: a GUID (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Tenancy {
    /// Whether discovery's `issuer` is that of our tenant: the template for `common` and
    /// `organizations`, the consumers tenant for `consumers`, our id, or (asked by domain) a
    /// tenant id.
    pub(crate) fn accepts_discovered_issuer(&self, issuer: &str) -> bool {
        let Some(id) = issuer
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_suffix("/v2.0"))
        else {
            return false;
        };
        match &self.class {
            TenantClass::Common | TenantClass::Organizations => id == TENANT_TEMPLATE,
            TenantClass::Consumers => id == CONSUMERS_TENANT,
            TenantClass::Id(ours) => id.eq_ignore_ascii_case(ours),
            TenantClass::Domain => is_guid(id),
        }
    }

    /// Whether the verified `id_token` claims' tenant may sign in (403 `tenant_not_allowed`).
    pub(crate) fn check(&self, claims: &serde_json::Value) -> Result<(), ProviderError> {
        let tid = claims["tid"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let class_allows = match &self.class {
            TenantClass::Organizations => tid != CONSUMERS_TENANT,
            TenantClass::Consumers => tid == CONSUMERS_TENANT,
            TenantClass::Id(ours) => tid == *ours,
            TenantClass::Common | TenantClass::Domain => true,
        };
        if !is_guid(&tid)
            || !class_allows
            || (!self.allowed.is_empty() && !self.allowed.contains(&tid))
        {
            return Err(ProviderError::TenantNotAllowed(tid));
        }
        Ok(())
    }
}

/// The kind `microsoft`: discovery at `{authority}/{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) fn build(
    settings: MicrosoftSettings,
    ctx: &ProviderContext<'_>,
) -> Result<Oidc, ConfigError> {
    let authority = ctx.url(
        "authority",
        settings
            .authority
            .as_deref()
            .unwrap_or("https://login.microsoftonline.com"),
    )?;
    let tenant = settings.tenant.unwrap_or_else(|| "common".into());
    let lower = tenant.to_ascii_lowercase();
    let class = match lower.as_str() {
        "common" => TenantClass::Common,
        "organizations" => TenantClass::Organizations,
        "consumers" => TenantClass::Consumers,
        id if is_guid(id) => TenantClass::Id(id.to_owned()),
        domain
            if domain.contains('.')
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
        {
            TenantClass::Domain
        }
        _ => {
            return Err(ConfigError::new(
                ctx.key("tenant"),
                format!("is `{tenant}`: use \"common\", \"organizations\", \"consumers\", a tenant id or a verified domain"),
            ))
        }
    };
    let mut allowed = Vec::new();
    for id in &settings.allowed_tenants {
        if !is_guid(id) {
            return Err(ConfigError::new(
                ctx.key("allowed_tenants"),
                format!("lists `{id}`, which is not a tenant id (a GUID)"),
            ));
        }
        allowed.push(id.to_ascii_lowercase());
    }
    let base = authority.as_str().trim_end_matches('/');
    let oidc = OidcSettings {
        client_id: settings.client_id,
        client_secret: settings.client_secret,
        issuer: Some(format!("{base}/{tenant}/v2.0")),
        scopes: None,
        offline: settings.offline,
        token_auth: settings.token_auth,
    };
    let tenancy = Tenancy {
        tenant,
        class,
        prefix: format!("{base}/"),
        allowed,
    };
    Ok(Oidc::new(oidc, ctx, MICROSOFT)?.with_tenancy(tenancy))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenancy(tenant: &str, allowed: &[&str]) -> Tenancy {
        let class = match tenant {
            "common" => TenantClass::Common,
            "organizations" => TenantClass::Organizations,
            "consumers" => TenantClass::Consumers,
            "contoso.example" => TenantClass::Domain,
            id => TenantClass::Id(id.to_owned()),
        };
        Tenancy {
            tenant: tenant.into(),
            class,
            prefix: "https://login.microsoftonline.com/".into(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        }
    }

    const ORG: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn discovery_must_name_the_tenant_asked_for() {
        let iss = |id: &str| format!("https://login.microsoftonline.com/{id}/v2.0");
        for (tenant, good, bad) in [
            ("common", iss("{tenantid}"), iss(ORG)),
            ("organizations", iss("{tenantid}"), iss(CONSUMERS_TENANT)),
            ("consumers", iss(CONSUMERS_TENANT), iss("{tenantid}")),
            (ORG, iss(ORG), iss(CONSUMERS_TENANT)),
            ("contoso.example", iss(ORG), iss("{tenantid}")),
        ] {
            let t = tenancy(tenant, &[]);
            assert!(t.accepts_discovered_issuer(&good), "{tenant}: {good}");
            assert!(!t.accepts_discovered_issuer(&bad), "{tenant}: {bad}");
            assert!(!t.accepts_discovered_issuer(&good.replace("microsoftonline", "evil")));
        }
    }

    #[test]
    fn tenant_classes_and_allowed_tenants() {
        let claims = |tid: &str| json!({ "tid": tid });
        assert!(tenancy("common", &[])
            .check(&claims(CONSUMERS_TENANT))
            .is_ok());
        assert!(tenancy("organizations", &[]).check(&claims(ORG)).is_ok());
        for (t, tid) in [
            (tenancy("organizations", &[]), CONSUMERS_TENANT),
            (tenancy("consumers", &[]), ORG),
            (tenancy(ORG, &[]), CONSUMERS_TENANT),
            (tenancy("common", &[ORG]), CONSUMERS_TENANT),
            (tenancy("common", &[]), "not-a-guid"),
        ] {
            assert!(
                matches!(
                    t.check(&claims(tid)),
                    Err(ProviderError::TenantNotAllowed(_))
                ),
                "{:?} {tid}",
                t.class
            );
        }
        assert!(tenancy("common", &[ORG])
            .check(&claims(&ORG.to_uppercase()))
            .is_ok());
    }
}
