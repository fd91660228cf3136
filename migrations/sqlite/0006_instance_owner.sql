-- Who holds an instance id: the host and process, and a random token of that process. Two live
-- processes configured with the same instance id would otherwise clear each other's calls; the
-- token tells a restart of the same instance (its old process is gone) from a twin.
ALTER TABLE instances ADD COLUMN host TEXT;
ALTER TABLE instances ADD COLUMN pid INTEGER;
ALTER TABLE instances ADD COLUMN token TEXT;
