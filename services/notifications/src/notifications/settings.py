"""The notifications service's settings: the kit's, the mail and SMS providers, whom and how fast."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit.settings import KitSettings, Secret, env

# The value of `.env.example`: public, so refused unless ENVIRONMENT=local.
EXAMPLE_UNSUBSCRIBE_SECRET = "local-unsubscribe-secret"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationsSettings(KitSettings):
    service_name: str = env(
        "SERVICE_NAME", "notifications", help="service name used in logs, metrics and events"
    )
    smtp_host: str = env("SMTP_HOST", "127.0.0.1", help="SMTP server mail is handed to")
    smtp_port: int = env("SMTP_PORT", 1025, help="port of the SMTP server")
    smtp_starttls: bool = env(
        "SMTP_STARTTLS", False, help="upgrade SMTP connections with STARTTLS (required when true)"
    )
    smtp_username: str = env(
        "SMTP_USERNAME", "", help="SMTP user name; no authentication when empty"
    )
    smtp_password: Secret = env("SMTP_PASSWORD", Secret(""), help="SMTP password")
    smtp_timeout: float = env(
        "SMTP_TIMEOUT", 10.0, help="seconds one SMTP connection or command may take"
    )
    smtp_connections: int = env(
        "SMTP_CONNECTIONS", 4, help="SMTP connections each instance keeps open and sends over"
    )
    mail_from: str = env("MAIL_FROM", "Shop <shop@shop.local>", help="From header of every email")
    staff_emails: tuple[str, ...] = env(
        "STAFF_EMAILS",
        (),
        help="comma-separated addresses that get the new-order notice and stock.low",
    )
    twilio_api_url: str = env(
        "TWILIO_API_URL", "https://api.twilio.com", help="base address of Twilio's REST API"
    )
    twilio_account_sid: str = env(
        "TWILIO_ACCOUNT_SID",
        "AC00000000000000000000000000000000",
        help="Twilio account SID (AC...)",
    )
    twilio_auth_token: Secret = env("TWILIO_AUTH_TOKEN", Secret(""), help="Twilio auth token")
    twilio_from: str = env("TWILIO_FROM", "+15005550006", help="sender number (E.164) of every SMS")
    twilio_timeout: float = env(
        "TWILIO_TIMEOUT", 10.0, help="seconds one request to Twilio may take"
    )
    sms_per_hour: int = env(
        "SMS_PER_HOUR", 5, help="SMS one phone number may get per hour; the rest are dropped"
    )
    storefront_url: str = env(
        "STOREFRONT_URL",
        "http://127.0.0.1:8080",
        help="the shop's web address, for links in messages (verify, reset, orders)",
    )
    public_url: str = env(
        "PUBLIC_URL",
        "http://127.0.0.1:8080",
        help="the API's public address (the gateway), for unsubscribe links",
    )
    unsubscribe_secret: Secret = env(
        "UNSUBSCRIBE_SECRET",
        Secret(EXAMPLE_UNSUBSCRIBE_SECRET),
        help="key that signs unsubscribe links (changing it voids the links already sent)",
    )
    default_locale: str = env(
        "DEFAULT_LOCALE", "en", help="locale of messages to recipients who chose none"
    )
    send_attempts: int = env(
        "SEND_ATTEMPTS",
        8,
        help="attempts of a message that fails transiently before it is dead-lettered",
    )
    retry_delay: float = env(
        "RETRY_DELAY",
        30.0,
        help="seconds before the first retry; each next one waits twice as long",
    )
    max_retry_delay: float = env(
        "MAX_RETRY_DELAY", 3600.0, help="longest wait between two attempts of one message"
    )
    message_max_age: int = env(
        "MESSAGE_MAX_AGE",
        86400,
        help="seconds after its event a message is still sent; older events (a stream replayed "
        "from its start at first deployment) send nothing",
    )
    dispatch_batch: int = env(
        "DISPATCH_BATCH", 100, help="messages one instance takes on at a time"
    )
    campaign_rate: float = env(
        "CAMPAIGN_RATE", 200.0, help="messages per second a campaign is sent at, unless it says"
    )
    users_url: str = env(
        "USERS_URL",
        "http://127.0.0.1:8090",
        help="users service (verification and reset links, service tokens)",
    )
    service_client_id: str = env(
        "SERVICE_CLIENT_ID",
        "",
        help="this service's client id at users (client credentials); SERVICE_NAME when empty",
    )
    service_client_secret: Secret = env(
        "SERVICE_CLIENT_SECRET",
        Secret(""),
        help="this service's client secret at users (see users' SERVICE_CLIENTS)",
    )
    upstream_timeout: float = env(
        "UPSTREAM_TIMEOUT", 10.0, help="seconds one call to another service may take"
    )
    users_service: str = env(
        "USERS_SERVICE", "users", help="name the users service publishes its events under"
    )
    orders_service: str = env(
        "ORDERS_SERVICE", "orders", help="name the orders service publishes its events under"
    )
    payments_service: str = env(
        "PAYMENTS_SERVICE", "payments", help="name the payments service publishes its events under"
    )
    products_service: str = env(
        "PRODUCTS_SERVICE", "products", help="name the products service publishes its events under"
    )

    def __post_init__(self) -> None:
        if self.send_attempts < 1 or self.sms_per_hour < 0 or self.smtp_connections < 1:
            raise ValueError(
                "SEND_ATTEMPTS and SMTP_CONNECTIONS must be at least 1, SMS_PER_HOUR at least 0"
            )
        if min(self.retry_delay, self.max_retry_delay, self.campaign_rate) <= 0:
            raise ValueError("RETRY_DELAY, MAX_RETRY_DELAY and CAMPAIGN_RATE must be positive")
        if self.dispatch_batch < 1 or self.message_max_age < 1:
            raise ValueError("DISPATCH_BATCH and MESSAGE_MAX_AGE must be at least 1")
        if self.smtp_username and not self.smtp_starttls and not self.local:
            raise ValueError(
                "SMTP_USERNAME without SMTP_STARTTLS would send the SMTP password in the clear: "
                "set SMTP_STARTTLS=true (allowed only with ENVIRONMENT=local)"
            )
        if not self.local and self.unsubscribe_secret.value == EXAMPLE_UNSUBSCRIBE_SECRET:
            raise ValueError(
                "UNSUBSCRIBE_SECRET: the example value of .env.example is allowed only with "
                "ENVIRONMENT=local: set a secret of your own"
            )
