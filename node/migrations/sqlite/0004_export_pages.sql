-- ExportYouth reads a youth's signals one page at a time, in registration order: each page is
-- one range of this index, so a page costs the same however many signals the youth has.
-- signals_by_party starts with subject_key too, but its order (organisation, state) would make
-- every page sort all of the youth's signals first.
CREATE INDEX signals_by_subject_registered ON signals (subject_key, registered_at, signal_id);
