"""What to build: recipes read from YAML with the file:line of every value (parse), validated once
into typed settings (schema), older recorded recipes brought up to date (migrations), and the
catalog of shipped recipes and pretrained models (catalog)."""
