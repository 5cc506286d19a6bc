"""Real processes and checks shared by the tests and the load benchmark: a SeaweedFS S3 server
(``s3server``), the service as a process (``service_process``) and the checks that nothing
acknowledged was lost or half-written (``reliability``). Neither ``app`` nor ``ml`` imports it."""
