-- Tables for the ceiling workload: the least of both services' schemas that
-- one order touches, in one scratch database.
DROP TABLE IF EXISTS stock, reservations, orders, order_items;
CREATE TABLE stock (product_id int PRIMARY KEY, on_hand int NOT NULL, reserved int NOT NULL DEFAULT 0);
INSERT INTO stock SELECT g, 100000000 FROM generate_series(1, 1000) g;
CREATE TABLE reservations (id bigserial PRIMARY KEY, order_id uuid NOT NULL, product_id int NOT NULL, quantity int NOT NULL);
CREATE TABLE orders (id uuid PRIMARY KEY, user_id text NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_items (id bigserial PRIMARY KEY, order_id uuid NOT NULL, product_id int NOT NULL, quantity int NOT NULL, price_minor bigint NOT NULL);
