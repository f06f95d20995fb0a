"""Token prices (USD per 1,000 tokens, exact decimals) from settings.DAC_LLM_PRICES."""
from decimal import Decimal

from django.conf import settings


def cost_of(model, tokens_in, tokens_out):
    price = settings.DAC_LLM_PRICES.get(model)
    if not price:
        return Decimal("0")
    spent_in = Decimal(price["input"]) * Decimal(int(tokens_in))
    spent_out = Decimal(price["output"]) * Decimal(int(tokens_out))
    return (spent_in + spent_out) / Decimal(1000)
