"""Account use cases: registration, email verification, profile, password change and reset, admin."""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shopkit import clock, revocations
from shopkit.ids import new_id
from users import links
from users.deps import Collaborators
from users.errors import (
    CannotChangeOwnAccess,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidToken,
    UserNotFound,
)
from users.events import (
    EmailChanged,
    EmailVerificationRequested,
    PasswordChanged,
    PasswordResetRequested,
    UserEvent,
    UserRegistered,
)
from users.history import pending
from users.links import Purpose
from users.model import Role, User
from users.store import EmailTaken

VERIFICATION_TTL = timedelta(hours=24)
RESET_TTL = timedelta(minutes=30)


def normalise_email(email: str) -> str:
    """The address an account is known by, and unique under: whatever looks alike is one address.

    NFKC turns fullwidth and mathematical letters into the plain ones (fullwidth or bold `sam@` is `sam@`),
    then case folding ignores case (domains are case-insensitive; local parts are in theory not,
    but every real mailbox treats them so). Such addresses are folded rather than refused: an
    input method that types fullwidth letters means the plain ones, and no mail system routes the
    two apart. NFKC again after folding, since folding can leave a string NFKC would change.
    """
    folded = unicodedata.normalize("NFKC", email.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


def _token_hash(users: Collaborators, purpose: Purpose, link_id: str) -> str:
    return links.token_hash(links.token(users.settings.password_pepper.value, purpose, link_id))


async def _verification(users: Collaborators, user_id: str, email: str) -> dict[str, Any]:
    """Store a verification link for `email`; the event that asks notifications to mail it.

    Stored before the account knows of it: a crash in between leaves a link that expires unused.
    """
    link_id = new_id()
    token_hash = _token_hash(users, Purpose.EMAIL_VERIFICATION, link_id)
    expires_at = clock.now() + VERIFICATION_TTL
    await users.store.insert_verification(token_hash, user_id, email, expires_at)
    requested = EmailVerificationRequested(user_id, email, link_id, clock.rfc3339(expires_at))
    return pending(
        f"verify-{token_hash[:24]}", UserEvent.EMAIL_VERIFICATION_REQUESTED, requested.to_json()
    )


def account_documents(
    user_id: str,
    *,
    email: str,
    name: str,
    password_hash: str,
    roles: Sequence[str],
    verified: bool,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A new account as registration stores it: its profile, and its parts by collection in the
    order they are inserted (users.store.PARTS; each takes the profile's `_id`). The load tests'
    bulk seeding writes the same documents."""
    profile = {
        "_id": user_id,
        "name": name,
        "phone": None,
        "pending_email": None,
        "created_at": now,
        "updated_at": now,
    }
    parts: dict[str, dict[str, Any]] = {
        "emails": {"email": email, "email_verified": verified},
        "credentials": {"password_hash": password_hash, "credentials_version": new_id()},
        "access": {"roles": list(roles), "disabled": False},
    }
    return profile, parts


async def register(
    users: Collaborators,
    *,
    email: str,
    name: str,
    password: str,
    roles: tuple[str, ...] = (Role.CUSTOMER,),
    verified: bool = False,
) -> User:
    user_id = new_id()
    email = normalise_email(email)
    events = [
        pending(
            f"registered-{user_id}",
            UserEvent.REGISTERED,
            UserRegistered(user_id, email, name, tuple(roles)).to_json(),
        )
    ]
    profile, parts = account_documents(
        user_id,
        email=email,
        name=name,
        password_hash=await users.hasher.hash(password),
        roles=roles,
        verified=verified,
        now=clock.now(),
    )
    if not verified:
        events.append(await _verification(users, user_id, email))
    try:
        user = await users.store.create_account(profile, parts, events)
    except EmailTaken:
        raise EmailAlreadyRegistered("an account with this email exists") from None
    # The account is committed: its events are best-effort here, `finish_registrations` repairs.
    await users.after_commit(
        "registration events", users.history.record_registration(user_id, events)
    )
    return user


async def verify_email(users: Collaborators, token: str) -> User:
    token_hash = links.token_hash(token)
    link = await users.store.verification(token_hash)
    if link is None or link.expires_at <= clock.now():
        raise InvalidToken("the verification link is invalid or has expired")
    user = await users.store.reload(link.user_id)
    email = link.email
    # Only the link for the email the account waits for: a link to an email given up on is dead.
    if email != user.awaited_email:
        raise InvalidToken("the verification link is invalid or has expired")
    if not await users.store.use_token(token_hash, link.expires_at):
        raise InvalidToken("the verification link was already used")
    try:
        # The login part only: the profile's pending email, once it is the login, shows as none.
        verified = await users.store.guard(
            user.id, "emails", {"email": email, "email_verified": True}
        )
    except EmailTaken:
        raise EmailAlreadyRegistered("another account took this email meanwhile") from None
    if email != user.email:
        # The login moved: the old address is told. The id derives from the link, used once, so
        # recording it again appends nothing.
        await users.history.record(
            user.id,
            f"email-changed-{token_hash[:24]}",
            UserEvent.EMAIL_CHANGED,
            EmailChanged(user.id, user.email, email).to_json(),
        )
    return verified


async def get(users: Collaborators, user_id: str) -> User:
    user = await users.store.get(user_id)
    if user is None:
        raise UserNotFound()
    return user


async def update_profile(users: Collaborators, user: User, changes: dict[str, Any]) -> User:
    email = changes.pop("email", None)
    if email is not None:
        email = normalise_email(email)
        if email != user.email:
            if await users.store.by_email(email) is not None:
                raise EmailAlreadyRegistered("an account with this email exists")
            event = await _verification(users, user.id, email)
            changes.update(pending_email=email)
            updated = await users.store.update(user.id, changes)
            await users.history.record(user.id, event["id"], event["type"], event["data"])
            return updated
    if not changes:
        return user
    return await users.store.update(user.id, changes)


async def change_password(
    users: Collaborators, user: User, current: str, new: str, session: str | None
) -> None:
    attempt = await users.password_guesses.attempt(user.id)
    if not await users.hasher.verify(current, user.password_hash):
        raise InvalidCredentials("the current password is wrong")
    await users.password_guesses.succeeded(user.id, attempt)
    await _set_password(users, user, new, keep_session=session)


async def _set_password(
    users: Collaborators, user: User, new: str, keep_session: str | None
) -> None:
    # The new version first: from then on every session opened under the old one is dead (even
    # if what follows never runs), but for the one carried over; revoking them keeps the list true.
    version = new_id()
    hashed = await users.hasher.hash(new)
    await users.store.guard(
        user.id, "credentials", {"password_hash": hashed, "credentials_version": version}
    )
    if keep_session is not None:
        await users.families.carry_over(keep_session, user.id, user.credentials_version, version)
    await users.families.revoke_all(user.id, reason="password-changed", keep=keep_session)
    await users.history.record(
        user.id,
        f"password-{new_id()}",
        UserEvent.PASSWORD_CHANGED,
        PasswordChanged(user.id, user.email).to_json(),
    )


async def request_password_reset(users: Collaborators, email: str, request_id: str) -> None:
    """Mail a reset link if the account of `email` (normalised) exists and is enabled.

    Carrying out one request again mails no second link: the request's id is the link's, and its
    token derives from it (and the pepper), so a repeat finds the link and the event of the first.
    """
    user = await users.store.by_email(email)
    if user is None or user.disabled:
        return
    token_hash = _token_hash(users, Purpose.PASSWORD_RESET, request_id)
    expires_at = clock.now() + RESET_TTL
    await users.store.insert_reset_token(token_hash, user.id, expires_at)
    requested = PasswordResetRequested(user.id, user.email, request_id, clock.rfc3339(expires_at))
    await users.history.record(
        user.id, f"reset-{token_hash[:24]}", UserEvent.PASSWORD_RESET_REQUESTED, requested.to_json()
    )


async def confirm_password_reset(users: Collaborators, token: str, new: str) -> None:
    token_hash = links.token_hash(token)
    record = await users.store.reset_token(token_hash)
    if record is None or record.expires_at <= clock.now():
        raise InvalidToken("the reset link is invalid or has expired")
    if not await users.store.use_token(token_hash, record.expires_at):
        raise InvalidToken("the reset link was already used")
    user = await get(users, record.user_id)
    await _set_password(users, user, new, keep_session=None)


async def admin_update(
    users: Collaborators, actor: str, user_id: str, changes: dict[str, Any]
) -> User:
    user = await get(users, user_id)
    if user.id == actor and ("roles" in changes or "disabled" in changes):
        # Otherwise the last admin could remove the platform's only way back in.
        raise CannotChangeOwnAccess("ask another admin to change your own roles or status")
    access: dict[str, Any] = {k: changes.pop(k) for k in ("roles", "disabled") if k in changes}
    updated = await users.store.update(user.id, changes) if changes else user
    if access:
        updated = await users.store.guard(user.id, "access", access)
    if "roles" in access or access.get("disabled"):
        await _revoke_access(users, user.id, "disabled" if access.get("disabled") else "roles")
    if access.get("disabled"):
        await users.families.revoke_all(user.id, reason="disabled")
    return updated


async def _revoke_access(users: Collaborators, user_id: str, reason: str) -> None:
    """Have every service refuse the account's access tokens issued so far.

    After the write: a token issued from then on carries the new roles (or is never issued). On
    any roles write, not only a removal: a repeated request (after a crash here) emits it again,
    and a grant takes effect at the next refresh instead of at expiry.
    """
    kind, data = revocations.access_revoked(
        user_id, clock.now(), users.settings.access_token_ttl, reason
    )
    await users.history.record(user_id, f"access-revoked-{new_id()}", kind, data)


async def ensure_admin(users: Collaborators) -> None:
    """Create the first admin from the environment; running it again (or on two instances) is harmless."""
    settings = users.settings
    if not settings.admin_email or not settings.admin_password.value:
        return
    existing = await users.store.by_email(normalise_email(settings.admin_email))
    if existing is not None:
        return
    # Another instance may create it at the same moment; then the email is simply taken.
    with contextlib.suppress(EmailAlreadyRegistered):
        await register(
            users,
            email=settings.admin_email,
            name="Administrator",
            password=settings.admin_password.value,
            roles=(Role.ADMIN,),
            verified=True,
        )
