"""Inventory: each SKU's stock ledger, orders' reservations on it, and what keeps both moving."""
