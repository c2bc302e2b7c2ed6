//! The fake providers' signing keys: RSA (RS256) or P-256 (ES256) pairs, their public JWKs, and
//! a self-signed X.509 certificate for the JWKs that carry `x5c` and `x5t` (Microsoft's).

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use rocket::serde::json::Value;

/// The algorithm a fake OpenID provider signs its `id_token`s with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// RSA PKCS#1 v1.5 with SHA-256 (what Google, Apple, Microsoft, GitLab, LinkedIn and Slack
    /// use).
    Rs256,
    /// ECDSA P-256 with SHA-256; its JWK has no `alg`, as some providers publish EC keys.
    Es256,
}

/// One signing key and what the JWKS publishes of it.
pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) encoding: EncodingKey,
    /// The public JWK, with `kid` and `use`.
    pub(super) jwk: Value,
    /// Public bytes (the RSA modulus, the EC point) to key an HMAC with (algorithm confusion).
    pub(super) public_bytes: Vec<u8>,
    /// A self-signed certificate of the key (DER), for `x5c`; RSA keys only.
    pub(super) certificate: Option<Vec<u8>>,
}

impl SigningKey {
    /// A fresh key of `alg` with a `kid` of `kid_len` characters.
    pub(super) fn generate(alg: SigningAlg, kid_len: usize) -> SigningKey {
        let kid: String = random_alnum(kid_len);
        match alg {
            SigningAlg::Rs256 => rsa(kid),
            SigningAlg::Es256 => ec(kid),
        }
    }

    /// The JWK with `x5t` (base64url SHA-1 of the certificate) and `x5c`, as Microsoft
    /// publishes them.
    pub(super) fn jwk_with_certificate(&self) -> Value {
        let mut jwk = self.jwk.clone();
        if let Some(cert) = &self.certificate {
            let thumb = digest(&SHA1_FOR_LEGACY_USE_ONLY, cert);
            jwk["x5t"] = Value::String(URL_SAFE_NO_PAD.encode(thumb.as_ref()));
            jwk["x5c"] = Value::Array(vec![Value::String(STANDARD.encode(cert))]);
        }
        jwk
    }
}

/// `len` random characters of `[A-Za-z0-9]`.
pub(super) fn random_alnum(len: usize) -> String {
    use rand::Rng;
    const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| SET[rng.gen_range(0..SET.len())] as char)
        .collect()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn public_jwk(encoding: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(encoding, alg).expect("JWK of a fresh key");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    serde_json::to_value(&jwk).unwrap_or_default()
}

fn rsa(kid: String) -> SigningKey {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
    let der = pair.as_der().expect("PKCS#8");
    let encoding =
        EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).expect("RSA PEM");
    let jwk = public_jwk(&encoding, Algorithm::RS256, &kid);
    let public_bytes = jwk["n"]
        .as_str()
        .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
        .unwrap_or_default();
    let certificate = self_signed(&pair);
    SigningKey {
        kid,
        alg: Algorithm::RS256,
        encoding,
        jwk,
        public_bytes,
        certificate,
    }
}

fn ec(kid: String) -> SigningKey {
    let (pkcs8, encoding) = p256_pair();
    drop(pkcs8);
    let mut jwk = public_jwk(&encoding, Algorithm::ES256, &kid);
    if let Some(map) = jwk.as_object_mut() {
        // Published without `alg`: the client takes the algorithm from the key type.
        map.remove("alg");
    }
    let public_bytes = [jwk["x"].as_str(), jwk["y"].as_str()]
        .into_iter()
        .flatten()
        .flat_map(|c| URL_SAFE_NO_PAD.decode(c).unwrap_or_default())
        .collect();
    SigningKey {
        kid,
        alg: Algorithm::ES256,
        encoding,
        jwk,
        public_bytes,
        certificate: None,
    }
}

/// A fresh P-256 pair: its PKCS#8 PEM (what Apple's `.p8` files hold) and its signing key.
pub(super) fn p256_pair() -> (String, EncodingKey) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key");
    let der = pair.to_pkcs8v1().expect("PKCS#8");
    let pem = pem("PRIVATE KEY", der.as_ref());
    let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC PEM");
    (pem, encoding)
}

/// The public JWK (`kty: EC`, `crv: P-256`) of a P-256 signing key.
pub(super) fn p256_public_jwk(encoding: &EncodingKey, kid: &str) -> Value {
    public_jwk(encoding, Algorithm::ES256, kid)
}

// A minimal DER writer: just what one self-signed certificate needs.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A self-signed v3 certificate of `pair` (`CN=accounts.accesscontrol.windows.net`, as
/// Microsoft's signing certificates are named), valid 2024–2049.
fn self_signed(pair: &KeyPair) -> Option<Vec<u8>> {
    use aws_lc_rs::signature::KeyPair as _;
    // sha256WithRSAEncryption, NULL parameters.
    let algorithm = seq(&[
        &tlv(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        ),
        &[0x05, 0x00],
    ]);
    let cn = b"accounts.accesscontrol.windows.net";
    let name = seq(&[&tlv(
        0x31,
        &seq(&[&tlv(0x06, &[0x55, 0x04, 0x03]), &tlv(0x0c, cn)]),
    )]);
    let validity = seq(&[&tlv(0x17, b"240101000000Z"), &tlv(0x17, b"491231235959Z")]);
    let spki = pair.public_key().as_der().ok()?;
    let mut serial = rand::random::<[u8; 8]>();
    serial[0] &= 0x7f;
    let tbs = seq(&[
        &tlv(0xa0, &tlv(0x02, &[0x02])),
        &tlv(0x02, &serial),
        &algorithm,
        &name,
        &validity,
        &name,
        spki.as_ref(),
    ]);
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &tbs,
        &mut signature,
    )
    .ok()?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    Some(seq(&[&tbs, &algorithm, &tlv(0x03, &bits)]))
}
