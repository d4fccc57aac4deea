-- An email channel may pin its relay's TLS certificate: the SHA-256 fingerprint of the certificate (its DER
-- bytes, as `openssl x509 -noout -fingerprint -sha256` prints it, without the colons). For a relay on a private
-- network with a self-signed or private-CA certificate, which the worker's system trust store cannot validate.
-- Without a pin the certificate is validated as usual (chain and host name); with one, the relay must present
-- exactly that certificate, and TLS is required even when smtp_security is 'auto' (docs/outbox.md).
-- A fingerprint is public, not a secret: it identifies the certificate, it does not open anything.

alter table public.message_channels
  add column smtp_tls_pin_sha256 text check (smtp_tls_pin_sha256 is null or smtp_tls_pin_sha256 ~ '^[0-9A-Fa-f]{64}$'),
  -- A pin is a promise about TLS: on a webhook channel, or on a relay spoken to without TLS, it would do nothing.
  add constraint message_channels_smtp_tls_pin_needs_tls
    check (smtp_tls_pin_sha256 is null or (channel = 'email' and smtp_security <> 'none'));
