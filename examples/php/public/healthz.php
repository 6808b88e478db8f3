<?php
// The health check of ferry.yaml: answers with the release that served it.
echo basename(dirname(__DIR__)), "\n";
