"""The catalog: categories, products and their SKUs, each a stream of events with projections for reads."""
