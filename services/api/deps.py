"""What a route needs besides its parameters: settings, a session, the caller's identity."""
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.config import Settings
from services.store import db, keys

LOCAL_OWNER = "local"
bearer = HTTPBearer(auto_error=False, description="an API key made with `python -m services.cli keys create`")


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_db():
    with db.session_scope() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]


def unauthorized(detail, error=None):
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def current_owner(request: Request, settings: SettingsDep, session: SessionDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The key's owner; without a key, "local" when the server runs open, else 401.

    A key that is sent is always checked, even on an open server."""
    if credentials is None and "authorization" in request.headers:
        raise unauthorized("malformed Authorization header: expected 'Bearer <key>'", error="invalid_request")
    if credentials is None:
        if settings.AUTH_REQUIRED:
            raise unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        return LOCAL_OWNER
    owner = keys.owner_for_api_key(session, credentials.credentials)
    if owner is None:
        raise unauthorized("invalid or revoked API key", error="invalid_token")
    return owner


def rate_limited_owner(request: Request, owner: Annotated[str, Depends(current_owner)]) -> str:
    wait = request.app.state.rate_limiter.hit(owner)
    if wait:
        raise HTTPException(429, f"rate limit of {request.app.state.settings.RATE_LIMIT_PER_MINUTE} "
                                 f"requests per minute exceeded", headers={"Retry-After": str(wait)})
    return owner


OwnerDep = Annotated[str, Depends(rate_limited_owner)]
