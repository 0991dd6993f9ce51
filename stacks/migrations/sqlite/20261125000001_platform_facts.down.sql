DROP TABLE platform_facts;
