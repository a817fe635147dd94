"""`flask seed`: a demo shop, so the web client, the mobile client and the API can be tried
at once.

A few providers and customers sharing one password, and bookings over the next days.
Everything goes through the services the API calls (`users.sign_up`,
`appointments.availability` and `appointments.book`), so every rule of theirs applies:
the shop's slots and time zone, the booking horizon, the active-booking limit, the
provider's notification and the customer's reminder. Run again, it creates only what is
missing: people are matched by e-mail, and each customer keeps one upcoming booking with
each provider (one cancelled since is booked again, at another free hour).

Two providers' addresses are under the development sink's reserved domains
(`gobarber/mail/sink.py`), so cancelling a booking with them shows a dead letter and a
retry.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from gobarber import shop_time
from gobarber.errors import GobarberError
from gobarber.extensions import db
from gobarber.mail.sink import FAIL_DOMAIN, FLAKY_DOMAIN
from gobarber.models import Appointment, User
from gobarber.services import appointments, users

PASSWORD = "gobarber123"
# Bookings go on the next DAYS days from tomorrow (so each can still be cancelled, which
# needs two hours' notice); a provider with no free hour there is looked for further on.
DAYS = 3
SEARCH_DAYS = 14


@dataclass(frozen=True)
class Account:
    name: str
    email: str
    provider: bool = False


# Mails to these two go wrong in the development sink: refused for good, and refused
# twice before they are accepted.
FAILING = Account("Diego Almeida", f"diego.almeida@{FAIL_DOMAIN}", provider=True)
FLAKY = Account("Bruno Carvalho", f"bruno.carvalho@{FLAKY_DOMAIN}", provider=True)
PROVIDERS = (
    Account("Rafael Souza", "rafael.souza@example.com", provider=True),
    Account("Juliana Ferreira", "juliana.ferreira@example.com", provider=True),
    FAILING,
    FLAKY,
)
CUSTOMERS = (
    Account("Ana Oliveira", "ana.oliveira@example.com"),
    Account("Lucas Pereira", "lucas.pereira@example.com"),
    Account("Mariana Costa", "mariana.costa@example.com"),
)


@dataclass
class Seeded:
    """What a run found and made."""

    people: list = field(default_factory=list)  # (User, created)
    booked: list = field(default_factory=list)  # (customer, provider, start)
    found: list = field(default_factory=list)  # (customer, provider, start)
    refused: list = field(default_factory=list)  # (customer, provider, reason)

    def bookings_of(self, user):
        """How many of the plan's bookings `user` has, as customer or provider."""
        return sum(user in pair[:2] for pair in self.booked + self.found)


def _person(account):
    """The account's user, found by e-mail or signed up; and whether it was created."""
    user = db.session.scalar(select(User).where(User.email == account.email))
    if user is not None:
        return user, False
    user = users.sign_up(
        name=account.name, email=account.email, password=PASSWORD, provider=account.provider
    )
    return user, True


def _upcoming(customer):
    """The customer's upcoming bookings, as (provider id, start) pairs."""
    query = select(Appointment.provider_id, Appointment.date).where(
        Appointment.user_id == customer.id,
        Appointment.canceled_at.is_(None),
        Appointment.date > shop_time.now(),
    )
    return db.session.execute(query).all()


def _free_hour(customer, provider, *, first_day, turn, busy):
    """The first slot from `first_day` days ahead that the provider has free (as the
    availability route tells the clients) and the customer is not booked at; `turn`
    shifts where each day's search starts, to spread the bookings over the day."""
    signed_in = users.SignedIn(customer.id, customer.token_version)
    today = datetime.now(shop_time.shop_zone()).date()
    for ahead in range(first_day, first_day + SEARCH_DAYS):
        noon = datetime.combine(today + timedelta(days=ahead), time(12), shop_time.shop_zone())
        day = appointments.availability(signed_in=signed_in, provider_id=provider.id, moment=noon)
        start = turn % len(day)
        for slot, free in day[start:] + day[:start]:
            if free and slot not in busy:
                return slot
    return None


def seed_shop():
    """Find or create the demo people, then book what the plan still misses."""
    seeded = Seeded()
    providers, customers = [], []
    for account in PROVIDERS + CUSTOMERS:
        user, created = _person(account)
        seeded.people.append((user, created))
        (providers if account.provider else customers).append(user)
    for i, customer in enumerate(customers):
        _top_up(seeded, customer, providers, spread=i)
    return seeded


def _top_up(seeded, customer, providers, *, spread):
    """Book the customer with each provider they have no upcoming booking with; `spread`
    (the customer's place in the plan) picks different days and hours for each."""
    upcoming = _upcoming(customer)
    booked_with = dict(upcoming)  # provider id -> a start
    busy = {start for _, start in upcoming}
    for j, provider in enumerate(providers):
        if provider.id in booked_with:
            seeded.found.append((customer, provider, booked_with[provider.id]))
            continue
        first_day, turn = 1 + (spread + j) % DAYS, 4 * spread + j
        try:
            slot = _free_hour(customer, provider, first_day=first_day, turn=turn, busy=busy)
            if slot is None:
                seeded.refused.append((customer, provider, f"no free hour in {SEARCH_DAYS} days"))
                continue
            appointments.book(customer=customer, provider_id=provider.id, start=slot)
        except GobarberError as error:
            db.session.rollback()
            seeded.refused.append((customer, provider, error.message))
            continue
        busy.add(slot)
        seeded.booked.append((customer, provider, slot))


def _aligned(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _people(seeded):
    rows = [("role", "name", "e-mail", "account", "bookings")]
    for user, created in seeded.people:
        role = "provider" if user.provider else "customer"
        account = "created" if created else "found"
        rows.append((role, user.name, user.email, account, seeded.bookings_of(user)))
    return _aligned(rows)


def _report(seeded):
    """The lines `flask seed` prints: who can sign in, what was made, what to try."""
    created = sum(made for _, made in seeded.people)
    found = len(seeded.people) - created
    bookings = len(seeded.booked) + len(seeded.found)
    password = f"password of every account: {PASSWORD}"
    if found:
        password += " (an account found keeps its own, if it was changed)"
    retry_base = current_app.config["MAIL_RETRY_BASE"]
    sign_in = json.dumps({"email": CUSTOMERS[0].email, "password": PASSWORD})
    return [
        f"Demo shop: {len(seeded.people)} people ({created} created, {found} found), "
        f"{bookings} upcoming bookings ({len(seeded.booked)} booked, "
        f"{len(seeded.found)} found).",
        "",
        *_people(seeded),
        "",
        password,
        *(
            f"not booked: {customer.name} with {provider.name}: {reason}"
            for customer, provider, reason in seeded.refused
        ),
        "",
        "To watch the mail pipeline (make run; mails land in mailbox/), cancel a booking with",
        f"  {FAILING.name} (@{FAIL_DOMAIN}): the sink refuses the mail (550); it is dead-lettered",
        "    at once and the customer is notified (flask queue dead shows it)",
        f"  {FLAKY.name} (@{FLAKY_DOMAIN}): the sink answers 451 twice; the worker retries",
        f"    after about {retry_base:g}s and {2 * retry_base:g}s, then the mail is sent",
        "Sign in through the API:",
        f"  curl -s -X POST {current_app.config['APP_URL']}/sessions "
        f"-H 'Content-Type: application/json' -d '{sign_in}'",
    ]


@click.command("seed")
@click.option("--force", is_flag=True, help="Seed even when APP_ENV is production.")
@with_appcontext
def seed(force):
    """Create a demo shop: providers, customers and bookings, all with one password."""
    if current_app.config["APP_ENV"] == "production" and not force:
        raise click.ClickException(
            "APP_ENV is production, and the demo accounts share a published password; "
            "give --force to seed anyway"
        )
    for line in _report(seed_shop()):
        click.echo(line)
