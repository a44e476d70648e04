-- Rigs name their SIMs and devices by their 15 digits (detector.ids.imsi_text / imei_text).
-- Rows written before kept a number's digits, without the leading zeros of test PLMNs such
-- as 001-01 or of TACs beginning with 0: padded here, so that a lookup by IMEI (devices ? $1)
-- and the members shown match what flags and SIM state say.
CREATE FUNCTION pg_temp.padded(ids jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(lpad(x, 15, '0') ORDER BY lpad(x, 15, '0')), '[]'::jsonb)
    FROM jsonb_array_elements_text(ids) AS x
$$;
UPDATE rigs SET members = pg_temp.padded(members), devices = pg_temp.padded(devices)
WHERE members <> pg_temp.padded(members) OR devices <> pg_temp.padded(devices);
DROP FUNCTION pg_temp.padded(jsonb);
