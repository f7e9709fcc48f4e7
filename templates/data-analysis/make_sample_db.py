"""Write the data-analysis template's sample shop database (SQLite), the same bytes every time.

    python templates/data-analysis/make_sample_db.py OUT.sqlite [--seed 22]

Four related tables: customers (600), products (80), orders (4,000) and order_items (~10,000),
dated across 2024, with a few NULLs on purpose (customers without a city, orders without a
discount code) so that the template's result validation has something to catch. Money is in
EUR cents (`*_cents` columns), so that the answer can say its unit. Only the standard library:
the tools service can run it where its SQLite roots are (`LOOM_TOOLS_SQLITE_ROOTS`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
    country TEXT NOT NULL, city TEXT, signed_up DATE NOT NULL);
CREATE TABLE products (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, unit_price_cents INTEGER NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    ordered_at DATE NOT NULL, status TEXT NOT NULL CHECK (status IN ('paid', 'shipped', 'refunded')),
    discount_code TEXT);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id), product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL CHECK (quantity > 0), unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id));
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_date ON orders(ordered_at);
CREATE INDEX items_product ON order_items(product_id);
"""

COUNTRIES = {"France": ["Paris", "Lyon", "Lille"], "Germany": ["Berlin", "Munich", "Hamburg"],
             "Spain": ["Madrid", "Seville"], "Italy": ["Rome", "Milan", "Turin"], "Netherlands": ["Amsterdam"]}
CATEGORIES = {"Books": (800, 4000), "Games": (1500, 7000), "Kitchen": (500, 12000),
              "Garden": (700, 25000), "Electronics": (2000, 90000)}
FIRST = ["Ada", "Ben", "Chloe", "David", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Klara", "Luca",
         "Mia", "Noah", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Yusuf"]
LAST = ["Martin", "Muller", "Garcia", "Rossi", "de Vries", "Bernard", "Schmidt", "Lopez", "Bianchi", "Jansen"]
YEAR = 2024


def build(path: Path, seed: int = 22, customers: int = 600, products: int = 80, orders: int = 4000) -> dict[str, int]:
    """Create the database at `path` (replaced if it exists); the row count per table."""
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        start = dt.date(YEAR, 1, 1)
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", [
            (i, f"{rnd.choice(FIRST)} {rnd.choice(LAST)}", f"customer{i}@example.com", country,
             None if rnd.random() < 0.05 else rnd.choice(COUNTRIES[country]),
             (start - dt.timedelta(days=rnd.randrange(0, 1000))).isoformat())
            for i in range(1, customers + 1) for country in [rnd.choice(sorted(COUNTRIES))]])
        price: dict[int, int] = {}
        rows = []
        for i in range(1, products + 1):
            category = rnd.choice(sorted(CATEGORIES))
            lo, hi = CATEGORIES[category]
            price[i] = rnd.randrange(lo, hi, 10)
            rows.append((i, f"{category[:-1] if category.endswith('s') else category} item {i}", category, price[i]))
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", rows)
        order_rows, item_rows = [], []
        for i in range(1, orders + 1):
            # More orders towards the end of the year: a trend the monthly chart shows.
            day = int(365 * rnd.random() ** 0.8)
            status = rnd.choices(["paid", "shipped", "refunded"], weights=[30, 65, 5])[0]
            code = rnd.choice(["WELCOME10", "SPRING", "VIP"]) if rnd.random() < 0.2 else None
            order_rows.append((i, rnd.randrange(1, customers + 1), (start + dt.timedelta(days=day)).isoformat(),
                               status, code))
            for product in rnd.sample(range(1, products + 1), rnd.randint(1, 4)):
                item_rows.append((i, product, rnd.randint(1, 3), price[product]))
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", order_rows)
        conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", item_rows)
        conn.commit()
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("customers", "products", "orders", "order_items")}
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the SQLite file to write (under the tools service's SQLite roots)")
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args(argv)
    counts = build(args.out, seed=args.seed)
    print(f"{args.out}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))


if __name__ == "__main__":
    main()
