"""Readable sentences for failed TLS handshakes and broken TLS links.

OpenSSL reports *what* failed (a verify code, a reason such as ``TLSV1_ALERT_UNKNOWN_CA``);
an operator needs to know *why* and what to check. :func:`describe_tls_failure` maps
the reasons we have met to one sentence naming the peer, and falls back to OpenSSL's
own words for the rest.
"""

from __future__ import annotations

import os
import ssl


# OpenSSL verify codes: the certificate chain does not lead to a CA we trust
_UNTRUSTED_CHAIN = {2, 18, 19, 20, 21, 27}
_NOT_TLS = {
    "WRONG_VERSION_NUMBER",
    "HTTP_REQUEST",
    "HTTPS_PROXY_REQUEST",
    "UNKNOWN_PROTOCOL",
    "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "UNEXPECTED_RECORD",
    "UNEXPECTED_MESSAGE",
    "RECORD_TOO_LARGE",
    "LENGTH_MISMATCH",
}
_REJECTED_OUR_CERT = {
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "TLSV1_ALERT_ACCESS_DENIED",
}


def describe_tls_failure(exc: BaseException, *, who: str, identity: str | None = None) -> str:
    """A readable sentence for a failed handshake or a broken TLS stream.

    ``who`` names the peer ("the peer at 10.0.0.2:4433", "ttp"); ``identity`` is the
    identity we expected it to present, if we know it.
    """
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return f"{who} closed the connection during the TLS handshake"
    if isinstance(cause, ssl.SSLCertVerificationError):
        code, message = cause.verify_code, cause.verify_message
        if code == 10:
            return (
                f"{who} presented an expired certificate ({message}); it must be renewed "
                "(or a clock is wrong: compare `date -u` on both hosts)"
            )
        if code == 9:
            return (
                f"{who} presented a certificate that is not valid yet ({message}); "
                "a clock is wrong (compare `date -u` on both hosts) or it was issued with a future start date"
            )
        if code == 62:
            return (
                f"{who} presented a certificate that is not valid for {identity!r}, the identity configured "
                f"for it ({message}); check its certificate's SAN with `mpcactors certs inspect`"
            )
        if code in _UNTRUSTED_CHAIN:
            return (
                f"{who} presented a certificate that is not signed by our CA ({message}); "
                "both sides need certificates issued by the CA in [tls] ca"
            )
        return f"{who} presented a certificate that failed verification: {message}"
    reason = getattr(cause, "reason", None) or ""
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return f"{who} presented no client certificate; every party must configure [tls] certificate and key"
    if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        return f"{who} requires a client certificate and we presented none"
    if reason == "TLSV1_ALERT_UNKNOWN_CA":
        return (
            f"{who} does not trust the CA that issued our certificate (TLS alert 'unknown ca'); "
            "our certificate must be issued by the CA in its [tls] ca"
        )
    if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED":
        return (
            f"{who} rejected our certificate as expired (TLS alert 'certificate expired'); renew it "
            "(or a clock is wrong: compare `date -u` on both hosts)"
        )
    if reason in _REJECTED_OUR_CERT:
        alert = reason.removeprefix("SSLV3_ALERT_").removeprefix("TLSV1_ALERT_").replace("_", " ").lower()
        return (
            f"{who} rejected our certificate (TLS alert '{alert}'); most often our certificate's SAN is not "
            "the identity it expects for us (its [peers.<our role>] identity), or a clock is wrong"
        )
    if reason in _NOT_TLS:
        return (
            f"{who} does not speak TLS (the bytes received are not a TLS record: {reason.lower().replace('_', ' ')}); "
            "is the address the listening port of an mpcactors party?"
        )
    if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        return (
            f"{who} aborted the TLS handshake (TLS alert 'handshake failure'); with TLS 1.2 this usually "
            "means it requires a client certificate and we presented none"
        )
    if reason in {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}:
        return f"{who} and we have no TLS version in common (mpcactors requires TLS 1.2 or newer)"
    if reason in {"UNEXPECTED_EOF_WHILE_READING"} or isinstance(cause, ssl.SSLEOFError):
        return f"{who} closed the connection during the TLS handshake"
    return f"TLS with {who} failed: {reason.lower().replace('_', ' ') or cause}"


def why_broken(exc: BaseException, who: str) -> str:
    """Why an established link broke: a TLS alert, a socket error, or a plain close."""
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return describe_tls_failure(cause, who=who)
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return f"{who} closed the connection"
