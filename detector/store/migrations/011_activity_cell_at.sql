-- sim_activity.cell_at: the time of the record that gave last_cell (the SIM's newest located
-- record of the month). Merging a checkpoint's facts keeps the cell of the newer located
-- record; comparing last_at (the newest record of any kind) instead could bring back an
-- older cell when a batch's newest record had no cell.
--
-- Rows written before this migration did not keep that time: last_at is its upper bound (and
-- what the old merge compared), so they keep behaving as before until a newer located record
-- arrives.
ALTER TABLE sim_activity ADD COLUMN cell_at timestamptz;       -- NULL when never located
UPDATE sim_activity SET cell_at = last_at WHERE last_cell <> '';
