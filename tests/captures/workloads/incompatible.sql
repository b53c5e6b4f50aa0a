-- An incompatible schema change in one table while another table goes on.
--   shop.prices (text key): numeric(8,2) -> numeric(12,4) changes the decimal's scale, which an
--               Iceberg table cannot follow (only precision widens): floe pauses the table.
--   shop.stock  (integer key): ordinary inserts, updates and deletes before and after; it must
--               keep committing while shop.prices is paused.

CREATE SCHEMA shop;
CREATE TABLE shop.prices (sku text PRIMARY KEY, amount numeric(8,2), note text);
CREATE TABLE shop.stock (item_id integer PRIMARY KEY, qty integer NOT NULL);

INSERT INTO shop.prices VALUES ('A-1', 10.50, 'first'), ('B-2', 3.25, NULL);
INSERT INTO shop.stock VALUES (1, 10), (2, 20);

-- start-engine

INSERT INTO shop.prices VALUES ('C-3', 99.99, 'third');
UPDATE shop.prices SET amount = 11.00 WHERE sku = 'A-1';
INSERT INTO shop.stock VALUES (3, 30);
UPDATE shop.stock SET qty = 11 WHERE item_id = 1;
-- sync

ALTER TABLE shop.prices ALTER COLUMN amount TYPE numeric(12,4);
UPDATE shop.prices SET amount = 1.2345 WHERE sku = 'B-2';
INSERT INTO shop.prices VALUES ('D-4', 5.5, 'after the change');
INSERT INTO shop.stock VALUES (4, 40);
UPDATE shop.stock SET qty = 21 WHERE item_id = 2;
DELETE FROM shop.stock WHERE item_id = 3;
-- sync
