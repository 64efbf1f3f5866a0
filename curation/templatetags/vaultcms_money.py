"""`{{ amount|money }}`: dollars with "$" and as many decimals as the amount needs."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def money(amount) -> str:
    """$12.35, $0.10, $0.0122, $0.000184, $0: cents for dollars, four places for cents, and fractions
    of a cent to their first three significant digits (one note costs about that much)."""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError, TypeError):
        return ""
    if value == 0:
        return "$0"
    size = abs(value)
    places = 2 if size >= 1 else 4 if size >= Decimal("0.01") else 6
    text = f"{value:,.{places}f}"
    if places > 2:  # no trailing zeros past the cents: $0.10, $0.0122
        whole, _, cents = text.partition(".")
        text = f"{whole}.{cents.rstrip('0').ljust(2, '0')}"
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"
