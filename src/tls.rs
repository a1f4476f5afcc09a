//! TLS set-up shared by every outbound client: rustls with the `ring` provider (no C toolchain
//! beyond what `ring` needs) and the platform's trust store, where HaRP installs Nextcloud's CA.

/// Installs `ring` as the process-wide rustls provider. Idempotent.
pub fn install_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
