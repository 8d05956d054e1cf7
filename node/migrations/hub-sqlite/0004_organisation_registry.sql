-- Organisations are no longer bound to the first region that names one: the organisation
-- registry (a file the hub loads at start-up) says which region serves which organisation, so a
-- wrong or hostile region can no longer take an organisation and stall the region that serves it.
DROP TABLE organisations;
