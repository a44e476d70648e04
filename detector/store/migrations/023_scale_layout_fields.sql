-- The field list of the record layout a scale-out partition's feature state was written in
-- (as engine_state's layout_fields for the daemon's), so that a build with another layout
-- carries a partition's records into its own by field name instead of refusing them.
-- NULL for a partition checkpointed before it was kept: such state is refused as before
-- when the layout differs.
ALTER TABLE scale_partitions ADD COLUMN layout_fields jsonb;
