"""`Authorization: Bearer <token>`: the request acts as the token's owner, with their roles."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None  # no token: the session may still authenticate the request
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Give the token as `Bearer <token>`.")
        token = ApiToken.objects.authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("This token is not valid.")
        if token.is_revoked:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if not token.owner.is_active:
            raise exceptions.AuthenticationFailed("This token's owner is inactive.")
        token.touch()
        return token.owner, token

    def authenticate_header(self, request) -> str:
        # First among the authentication classes, so an anonymous request gets a 401 saying
        # how to authenticate rather than a bare 403.
        return f'{self.keyword} realm="api"'
