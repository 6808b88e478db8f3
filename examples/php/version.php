<?php
return 'version 1';
