"""`Authorization: Bearer <token>`: the request acts as the token's owner, with their roles
(agents.credentials decides; this is DRF's door to it)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from agents.credentials import KEYWORD, CredentialRefused, bearer


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = KEYWORD

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        try:
            return bearer(header)  # None: the session may still authenticate the request
        except CredentialRefused as refused:
            raise exceptions.AuthenticationFailed(str(refused)) from None

    def authenticate_header(self, request) -> str:
        # First among the authentication classes, so an anonymous request gets a 401 saying
        # how to authenticate rather than a bare 403.
        return f'{self.keyword} realm="api"'
