"""Product search: an OpenSearch/Elasticsearch index fed by the products event stream."""
