-- Why an alert that was due to be notified was not (recorded, not sent): for now, that the events behind it were
-- received longer ago than alerts.notify_horizon (an import of archives, a backlog evaluated late).
ALTER TABLE alerts ADD COLUMN held_back TEXT;
