DROP TABLE state_versions;
