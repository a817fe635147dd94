"""The contract's pt-BR texts, written out by hand so tests do not reuse the app's wording."""

MONTHS_PT_BR = (
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
)


def booking_text(customer_name, start):
    """The provider's notification for a booking at `start` (a shop-local datetime)."""
    month = MONTHS_PT_BR[start.month - 1]
    return (
        f"Novo agendamento de {customer_name} para dia {start.day:02d} de {month}, "
        f"às {start.hour}:00h"
    )
