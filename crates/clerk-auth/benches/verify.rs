//! What `Verifier::verify` costs next to the one thing it cannot avoid: an
//! RSA-2048 PKCS#1 v1.5 SHA-256 signature check.
//!
//! All cases live in one criterion group so they print side by side:
//!
//! - `floor_rsa2048_pkcs1_sha256`: aws-lc-rs `ParsedPublicKey::verify_sig` on
//!   the signing input and signature of the same token (key parsed once);
//! - `valid_pem` / `valid_jwks_warm`: a full successful `verify` in PEM mode
//!   and in JWKS mode with a warm cache (the stand-in is served on the same
//!   runtime, one warm-up verify fills the cache, no fetch happens after);
//! - `valid_api_key_warm`: an API key (`ak_...`) with its verification
//!   cached (one warm-up call to the stand-in's `/v1/api_keys/verify`, none
//!   after), next to the session-token figures;
//! - `reject_*`: the refusal paths an attacker can trigger for free.
//!
//! Run: `cargo bench -p clerk-auth --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clerk_auth::config::JwksOptions;
use clerk_auth::testing::{ClerkStandIn, Endpoint};
use clerk_auth::{
    AuthError, Clock, KeySource, MachineConfig, Verifier, VerifierConfig, MAX_TOKEN_BYTES,
};
use criterion::{criterion_group, criterion_main, Criterion};
use secrecy::SecretString;
use serde_json::json;

/// Tokens outlive the run, and the JWKS cache neither expires nor refetches.
const LONG: Duration = Duration::from_secs(3600);

/// `n` pseudo-random bytes from a fixed seed (xorshift64), so runs compare.
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn bench_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let clerk = ClerkStandIn::new();
    let config = VerifierConfig {
        issuer: Some(clerk.issuer()),
        jwks: JwksOptions {
            ttl: LONG,
            cooldown: LONG,
            ..JwksOptions::default()
        },
        ..VerifierConfig::default()
    };
    let pem_verifier = Verifier::new(KeySource::Pem(clerk.public_key_pem()), config.clone())
        .expect("PEM verifier");
    let api_url = rt.block_on(clerk.serve());
    // Machine-token answers are trusted 30 s at most; a frozen test clock
    // keeps the warm-up answer cached for the whole run.
    let machine_verifier = Verifier::new(
        KeySource::Pem(clerk.public_key_pem()),
        VerifierConfig {
            machine: Some(MachineConfig::new(
                &api_url,
                SecretString::from(clerk.secret_key()),
            )),
            clock: Clock::test(),
            ..config.clone()
        },
    )
    .expect("machine-token verifier");
    let jwks_verifier = Verifier::new(
        KeySource::Jwks {
            api_url,
            secret_key: SecretString::from(clerk.secret_key()),
        },
        config,
    )
    .expect("JWKS verifier");
    let api_key = clerk.mint_api_key("user_bench", &["notebooks:read"]);

    // Tokens: one valid, and one per rejection path.
    let valid = clerk.token("user_bench").lifetime(3600).sign();
    let (signing_input, sig_b64) = valid.rsplit_once('.').expect("three segments");
    let signature = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .expect("base64url signature");
    assert_eq!(signature.len(), 256, "RSA-2048 signature");

    let unknown_kid = clerk
        .token("user_bench")
        .lifetime(3600)
        .header("kid", json!("ins_not_in_the_jwks"))
        .sign();
    let two_segments = signing_input.to_owned();
    let bad_alg = clerk
        .token("user_bench")
        .lifetime(3600)
        .header("alg", json!("HS256"))
        .sign();
    let oversized = clerk
        .token("user_bench")
        .lifetime(3600)
        .claim("pad", json!("x".repeat(MAX_TOKEN_BYTES)))
        .sign();
    assert!(oversized.len() > MAX_TOKEN_BYTES);
    // Garbage below the modulus (top byte 0), so aws-lc does the full
    // modular exponentiation before refusing ...
    let mut low = garbage(256);
    low[0] = 0;
    let bad_sig = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&low));
    // ... and garbage above it (all 0xff), which aws-lc refuses before any math.
    let bad_sig_high = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([0xffu8; 256]));

    // The floor: the same RSA check, key parsed once, nothing else.
    let spki = pem::parse(clerk.public_key_pem()).expect("SPKI PEM");
    let floor_key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki.contents())
        .expect("aws-lc parses the SPKI");
    floor_key
        .verify_sig(signing_input.as_bytes(), &signature)
        .expect("floor verifies the valid token");

    // Warm the JWKS cache, then check every case does what its name says.
    rt.block_on(async {
        jwks_verifier
            .verify(&valid)
            .await
            .expect("JWKS warm-up verify");
        pem_verifier.verify(&valid).await.expect("PEM verify");
        let cases: [(&Verifier, &str, AuthError); 6] = [
            (&jwks_verifier, &unknown_kid, AuthError::UnknownKid),
            (
                &pem_verifier,
                &two_segments,
                AuthError::Malformed("segment count"),
            ),
            (&pem_verifier, &bad_alg, AuthError::BadAlgorithm),
            (&pem_verifier, &oversized, AuthError::TooLarge),
            (&pem_verifier, &bad_sig, AuthError::BadSignature),
            (&pem_verifier, &bad_sig_high, AuthError::BadSignature),
        ];
        for (verifier, token, want) in cases {
            assert_eq!(verifier.verify(token).await.err(), Some(want));
        }
    });
    let jwks = jwks_verifier.jwks().expect("JWKS mode");
    assert_eq!(jwks.fetch_count(), 1, "one fetch: the warm-up");

    let mut group = c.benchmark_group("clerk_auth_verify");
    group.bench_function("floor_rsa2048_pkcs1_sha256", |b| {
        b.iter(|| {
            floor_key
                .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
                .is_ok()
        })
    });
    let async_cases: [(&str, &Verifier, &str); 8] = [
        ("valid_pem", &pem_verifier, &valid),
        ("valid_jwks_warm", &jwks_verifier, &valid),
        ("reject_unknown_kid_jwks", &jwks_verifier, &unknown_kid),
        ("reject_bad_shape_2_segments", &pem_verifier, &two_segments),
        ("reject_bad_alg_hs256", &pem_verifier, &bad_alg),
        ("reject_oversized", &pem_verifier, &oversized),
        ("reject_bad_signature", &pem_verifier, &bad_sig),
        (
            "reject_bad_signature_above_modulus",
            &pem_verifier,
            &bad_sig_high,
        ),
    ];
    for (name, verifier, token) in async_cases.into_iter().take(2) {
        bench_async(&mut group, &rt, name, verifier, token);
    }
    // Warmed right before it is measured: moka's real-time bound (30 s)
    // would otherwise drop the answer during the earlier cases.
    rt.block_on(machine_verifier.verify(&api_key))
        .expect("API key warm-up verify");
    bench_async(
        &mut group,
        &rt,
        "valid_api_key_warm",
        &machine_verifier,
        &api_key,
    );
    for (name, verifier, token) in async_cases.into_iter().skip(2) {
        bench_async(&mut group, &rt, name, verifier, token);
    }
    group.finish();

    assert_eq!(
        jwks.fetch_count(),
        1,
        "no JWKS fetch during measurement (warm cache, long cooldown)"
    );
    assert_eq!(
        clerk.requests(Endpoint::ApiKeys),
        1,
        "no API key verification call during measurement (warm cache)"
    );
}

/// One `verify` case of the group, on the bench's runtime.
fn bench_async(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    verifier: &Verifier,
    token: &str,
) {
    group.bench_function(name, |b| {
        b.to_async(rt)
            .iter(|| async { verifier.verify(black_box(token)).await })
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
