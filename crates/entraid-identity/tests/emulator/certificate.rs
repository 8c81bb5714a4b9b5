//! The client certificate credential against the emulator, which verifies the assertion's signature against the
//! registered certificate and checks its claims: PS256 and RS256, chains, PEM and PFX files, wrong keys, and the
//! loaders' refusals (mismatched key, EC key, garbage, wrong password).

use entraid_core::{Error, Secret};
use entraid_identity::{AssertionAlgorithm, ClientCertificate, ClientCertificateCredential};
use entraid_testkit::emulator::{App, Emulator, Endpoint, Fault};
use entraid_testkit::keys::TestKey;
use entraid_testkit::tls::ClientCertificate as TestCert;

use crate::common::{Ctx, expect_error, fixture};

fn credential(ctx: &Ctx, client_id: &str, cert: ClientCertificate) -> ClientCertificateCredential {
    ClientCertificateCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id(client_id)
        .certificate(cert)
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

fn test_cert(key: &TestKey) -> TestCert {
    TestCert::self_signed(key, "client-app").unwrap()
}

#[tokio::test]
async fn ps256_by_default_and_rs256_on_request() {
    let ctx = Ctx::start().await;
    let cert = test_cert(TestKey::client_app());
    let app = ctx
        .emu
        .add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    let loaded = ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap();
    assert_eq!(loaded.thumbprint_sha256().to_ascii_lowercase().len(), 64);
    ctx.expect_token(&credential(&ctx, "cert-app", loaded.clone()), &app.oid)
        .await;
    let rs256 = ClientCertificateCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("cert-app")
        .certificate(loaded)
        .algorithm(AssertionAlgorithm::Rs256)
        .send_certificate_chain(true)
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    ctx.expect_token(&rs256, &app.oid).await;
    let form = &ctx.emu.requests_to(Endpoint::Token)[0];
    assert_eq!(
        form.param("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(form.param("client_secret"), None);
}

#[tokio::test]
async fn an_assertion_is_reused_and_a_refused_reused_one_is_replaced() {
    // With jti replay allowed, the same assertion serves two requests.
    let ctx = Ctx::with(
        Emulator::builder()
            .reject_jti_replay(false)
            .start()
            .await
            .unwrap(),
    );
    let cert = test_cert(TestKey::client_app());
    let app = ctx
        .emu
        .add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    let c = credential(
        &ctx,
        "cert-app",
        ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap(),
    );
    ctx.expect_token(&c, &app.oid).await;
    ctx.expect_token(&c, &app.oid).await;
    assert_eq!(ctx.emu.requests_to(Endpoint::Token).len(), 2);

    // The default emulator refuses a replayed jti (AADSTS50013): the credential signs a fresh assertion and
    // tries once more, so every request still succeeds.
    let strict = Ctx::start().await;
    let app = strict
        .emu
        .add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    let c = credential(
        &strict,
        "cert-app",
        ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap(),
    );
    for _ in 0..3 {
        strict.expect_token(&c, &app.oid).await;
    }
}

#[tokio::test]
async fn a_chain_from_a_ca_is_accepted() {
    let ctx = Ctx::start().await;
    let leaf = ctx
        .emu
        .ca()
        .issue_client_certificate(TestKey::client_app(), "client-app")
        .unwrap();
    let app = ctx
        .emu
        .add_app(App::new("chain-app").certificate(&leaf))
        .unwrap();
    // CA certificate first, leaf second: the loader puts the signing certificate first.
    let pem = format!(
        "{}{}{}",
        ctx.emu.ca_cert_pem(),
        leaf.cert_pem(),
        leaf.key_pem()
    );
    let loaded = ClientCertificate::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(loaded.chain().len(), 2);
    assert_eq!(loaded.chain()[0].as_ref(), leaf.cert_der());
    let c = ClientCertificateCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("chain-app")
        .certificate(loaded)
        .send_certificate_chain(true)
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    ctx.expect_token(&c, &app.oid).await;
}

#[tokio::test]
async fn a_certificate_entra_does_not_know_is_refused_with_the_seed_error() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_app(App::new("cert-app").certificate(&test_cert(TestKey::client_app())))
        .unwrap();
    // A valid key and certificate, but not the registered one.
    let other = test_cert(TestKey::client_other());
    let c = credential(
        &ctx,
        "cert-app",
        ClientCertificate::from_pem(other.pem_bundle().as_bytes()).unwrap(),
    );
    let err = expect_error(&c).await;
    assert!(
        matches!(
            err,
            Error::AuthenticationFailed {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    let entra = err.entra_error().unwrap();
    assert_eq!(entra.error, "invalid_client");
    assert!(entra.has_code(70002) && entra.has_code(50013), "{entra:?}");
}

#[tokio::test]
async fn faults_on_the_token_endpoint() {
    let ctx = Ctx::start().await;
    let cert = test_cert(TestKey::client_app());
    let app = ctx
        .emu
        .add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    let c = credential(
        &ctx,
        "cert-app",
        ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap(),
    );
    ctx.emu
        .faults(Endpoint::Token)
        .push(Fault::Status(503).retry_after(1))
        .push(Fault::OversizedBody)
        .push(Fault::ResetConnection);
    assert!(matches!(
        expect_error(&c).await,
        Error::Http { status: 503, .. }
    ));
    assert!(matches!(
        expect_error(&c).await,
        Error::InvalidResponse { .. }
    ));
    assert!(matches!(expect_error(&c).await, Error::Transport { .. }));
    ctx.expect_token(&c, &app.oid).await;
}

#[tokio::test]
async fn pfx_files_made_by_openssl_load_and_work() {
    let ctx = Ctx::start().await;
    let leaf_pem = std::fs::read_to_string(fixture("client-app-leaf.pem")).unwrap();
    let app = ctx
        .emu
        .add_app(App::new("pfx-app").certificate_pem(leaf_pem.clone()))
        .unwrap();
    let password = Secret::new("fixture-password");
    for (file, password) in [
        ("client-app-chain-aes.pfx", Some(&password)),
        ("client-app-3des.pfx", Some(&password)),
        ("client-app-nopass.pfx", None),
    ] {
        let cert = ClientCertificate::from_file(fixture(file), password)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected_chain = if file.contains("chain") { 2 } else { 1 };
        assert_eq!(cert.chain().len(), expected_chain, "{file}");
        ctx.expect_token(&credential(&ctx, "pfx-app", cert), &app.oid)
            .await;
    }
}

#[test]
fn pfx_refusals_are_clear() {
    let password = Secret::new("fixture-password");
    let err = ClientCertificate::from_file(
        fixture("client-app-chain-aes.pfx"),
        Some(&Secret::new("wrong")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("password is wrong"), "{err}");
    let err = ClientCertificate::from_file(fixture("client-app-chain-aes.pfx"), None).unwrap_err();
    assert!(err.to_string().contains("password"), "{err}");
    let err = ClientCertificate::from_file(fixture("ec.pfx"), Some(&password)).unwrap_err();
    assert!(err.to_string().contains("RSA"), "{err}");
    let err = ClientCertificate::from_bytes(b"\x30\x82garbage that is not DER", None).unwrap_err();
    assert!(err.to_string().contains("unreadable PKCS#12"), "{err}");
    let err = ClientCertificate::from_file(fixture("does-not-exist.pfx"), None).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    assert!(matches!(err, Error::Configuration { .. }));
}

/// PFX archives written at test time with p12-keystore: encrypted with a password, and one whose key does not
/// match its certificate.
#[test]
fn pfx_written_at_test_time_and_a_mismatched_one() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject as _;

    let write = |key: &TestKey, cert: &TestCert, password: &str| {
        let der = PrivatePkcs8KeyDer::from_pem_slice(key.private_key_pem().as_bytes()).unwrap();
        let chain = PrivateKeyChain::new(
            b"key-1".to_vec(),
            PrivateKey::from_der(der.secret_pkcs8_der()).unwrap(),
            [Certificate::from_der(cert.cert_der()).unwrap()],
        );
        let mut store = KeyStore::new();
        store.add_entry("client", KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(password).write().unwrap()
    };
    let app_cert = test_cert(TestKey::client_app());
    let good = write(TestKey::client_app(), &app_cert, "pw");
    let loaded = ClientCertificate::from_pkcs12(&good, Some(&Secret::new("pw"))).unwrap();
    assert_eq!(loaded.chain()[0].as_ref(), app_cert.cert_der());

    let mismatched = write(TestKey::client_other(), &app_cert, "pw");
    let err = ClientCertificate::from_pkcs12(&mismatched, Some(&Secret::new("pw"))).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
