-- Items, newest first by id: identity values only grow, so ORDER BY id DESC is creation order
-- and the primary key index serves both the listing and keyset (cursor) pagination.
CREATE TABLE items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now()
);
