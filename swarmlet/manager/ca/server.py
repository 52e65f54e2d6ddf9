"""The CA's paths on the manager's port: the root, a first certificate, a renewal."""

from __future__ import annotations

from aiohttp import web

from swarmlet.manager.ca.authority import CertificateAuthority, Issued
from swarmlet.pki import CertificateInfo
from swarmlet.pki.tls import peer_certificate
from swarmlet.protocol import CA_PATH, JOIN_PATH, RENEW_PATH, CertificateRequest, IssuedCertificate


def peer_of(request: web.Request) -> CertificateInfo | None:
    """The client certificate of the request's connection (verified at the handshake)."""
    transport = request.transport
    return peer_certificate(transport.get_extra_info("ssl_object") if transport else None)


def _answer(issued: Issued) -> web.Response:
    body = IssuedCertificate(
        node_id=issued.node_id, certificate=issued.certificate, trust=issued.trust
    )
    return web.json_response(text=body.model_dump_json())


def ca_routes(authority: CertificateAuthority) -> list[web.RouteDef]:
    async def root(request: web.Request) -> web.Response:
        return web.Response(text=authority.root(), content_type="application/x-pem-file")

    async def join(request: web.Request) -> web.Response:
        body = CertificateRequest.model_validate_json(await request.read())
        return _answer(await authority.join(body.token, body.csr))

    async def renew(request: web.Request) -> web.Response:
        peer = peer_of(request)
        body = CertificateRequest.model_validate_json(await request.read())
        return _answer(await authority.renew(peer, body.csr))

    return [web.get(CA_PATH, root), web.post(JOIN_PATH, join), web.post(RENEW_PATH, renew)]
