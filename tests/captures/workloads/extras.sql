-- Types and table shapes that types.sql and evolution.sql leave out.
--   shop.extras   (uuid key): more array element types, every built-in range type, geometric types
--                 that Debezium only sends with include.unknown.datatypes (as the bytes of their text),
--                 "char", name, oid, jsonb arrays, money extremes, a real column widened to double
--                 precision and an integer column widened to bigint while streaming.
--   shop.lines    (composite text + integer key, REPLICA IDENTITY FULL): a key change of one key column,
--                 updates, deletes with the whole before image.
--   shop.audit    (no primary key, REPLICA IDENTITY FULL): Debezium sends no key, so floe cannot keep its
--                 current state; every event of it goes to the dead-letter table while the other tables
--                 of the same stream commit.

CREATE SCHEMA shop;
CREATE TYPE shop.size AS ENUM ('S', 'M', 'L', 'XL');

CREATE TABLE shop.extras (
    id          uuid PRIMARY KEY,
    n           integer,
    r           real,
    b_arr       boolean[],
    f_arr       double precision[],
    d_arr       date[],
    ts_arr      timestamptz[],
    j_arr       jsonb[],
    v_arr       varchar(8)[],
    e_arr       shop.size[],
    i8_range    int8range,
    num_range   numrange,
    d_range     daterange,
    ts_range    tsrange,
    c_char1     "char",
    c_name      name,
    c_oid       oid,
    c_money     money,
    c_box       box,
    c_circle    circle,
    c_line      line,
    c_lseg      lseg,
    c_path      path,
    c_polygon   polygon
);

CREATE TABLE shop.lines (
    order_no  text NOT NULL,
    line_no   integer NOT NULL,
    item      text,
    qty       integer,
    PRIMARY KEY (order_no, line_no)
);
ALTER TABLE shop.lines REPLICA IDENTITY FULL;

CREATE TABLE shop.audit (
    at     timestamptz NOT NULL,
    what   text
);
ALTER TABLE shop.audit REPLICA IDENTITY FULL;

INSERT INTO shop.extras VALUES
    ('00000000-0000-0000-0000-000000000001', 1, 1.5,
     '{true,false,NULL}', '{1.5,NaN,Infinity,-Infinity,NULL}', '{2024-02-29,1970-01-01,NULL}',
     '{"2024-02-29 12:00:00+00","1999-12-31 23:59:59.5+00"}', ARRAY['{"a":1}'::jsonb, '[1,2]'::jsonb, 'null'::jsonb],
     '{"ab","ü😀",""}', '{S,XL}',
     '[1,100)', '[1.5,2.25]', '[2024-01-01,2024-02-01)', '[2024-01-01 10:00,2024-01-01 12:00)',
     'x', 'a_name', 4294967295, -92233720368547758.08,
     '((0,0),(1,1))', '<(0,0),2.5>', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1),(2,0))', '((0,0),(1,1),(1,0))');
INSERT INTO shop.extras (id) VALUES ('00000000-0000-0000-0000-000000000002');
INSERT INTO shop.lines VALUES ('A-1', 1, 'pen', 2), ('A-1', 2, 'ink', 1), ('B-7', 1, 'pad', 10);
INSERT INTO shop.audit VALUES ('2024-01-01 00:00:00+00', 'before the engine');

-- start-engine

INSERT INTO shop.extras VALUES
    ('ffffffff-ffff-ffff-ffff-ffffffffffff', 2147483647, 3.4028235e38,
     '{}', '{-0,5e-324,1.7976931348623157e308}', '{0001-01-01,9999-12-31}',
     '{}', '{}', '{NULL}', '{}',
     'empty', '(,)', '[2024-01-01,)', '(,2024-01-01 00:00)',
     ' ', '', 0, 92233720368547758.07,
     '((-1,-1),(1e10,1e-10))', '<(1,2),0>', '{0,1,0}', '[(1,2),(3,4)]', '[(0,0),(1,1),(2,2)]', '((0,0))');
UPDATE shop.extras SET n = n + 1, r = r * 2, f_arr = f_arr || 42.0::float8 WHERE id = '00000000-0000-0000-0000-000000000001';
INSERT INTO shop.lines VALUES ('C-9', 1, 'clip', 100);
UPDATE shop.lines SET qty = qty + 1 WHERE order_no = 'A-1';
UPDATE shop.lines SET line_no = 3 WHERE order_no = 'A-1' AND line_no = 2;
DELETE FROM shop.lines WHERE order_no = 'B-7';
INSERT INTO shop.audit VALUES ('2024-01-02 00:00:00+00', 'streamed');
UPDATE shop.audit SET what = 'streamed, then updated' WHERE what = 'streamed';
-- sync

-- widen while streaming: integer -> bigint, real -> double precision
ALTER TABLE shop.extras ALTER COLUMN n TYPE bigint;
ALTER TABLE shop.extras ALTER COLUMN r TYPE double precision;
UPDATE shop.extras SET n = 9223372036854775807, r = 0.1 WHERE id = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
INSERT INTO shop.extras (id, n, r) VALUES ('00000000-0000-0000-0000-000000000003', -9223372036854775808, 1e-300);
DELETE FROM shop.extras WHERE id = '00000000-0000-0000-0000-000000000002';
DELETE FROM shop.audit;
