<?php
// The migration hook: runs in the new release before the swap (hooks.before_activate). The
// database lives in shared/storage, so it outlives releases; additive changes only (see the
// README on expand and contract).
$db = new PDO('sqlite:' . __DIR__ . '/storage/app.sqlite');
$db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
$db->exec('CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, release TEXT NOT NULL, ran_at TEXT NOT NULL)');
$stmt = $db->prepare('INSERT INTO migrations (release, ran_at) VALUES (?, ?)');
$stmt->execute([getenv('FERRY_RELEASE') ?: 'manual', gmdate('c')]);
echo "migrated for ", getenv('FERRY_RELEASE'), "\n";
