-- The least SQL one confirmed single-item order needs with a database per
-- service: the inventory transaction (reserve + reservation row) and the
-- order transaction (order + item), each committed on its own. This is the
-- database's ceiling that the system is measured against.
\set p random(1, 1000)
BEGIN;
UPDATE stock SET reserved = reserved + 1 WHERE product_id = :p AND on_hand - reserved >= 1;
INSERT INTO reservations (order_id, product_id, quantity) VALUES (gen_random_uuid(), :p, 1);
COMMIT;
BEGIN;
INSERT INTO orders (id, user_id, status) VALUES (gen_random_uuid(), 'u', 'confirmed');
INSERT INTO order_items (order_id, product_id, quantity, price_minor) VALUES (gen_random_uuid(), :p, 1, 999);
COMMIT;
