<?php
// The page shows which release served it. With nginx's $realpath_root, __DIR__ is the real path
// of the release (releases/<id>/public), never the current symlink.
$release = basename(dirname(__DIR__));
$version = require __DIR__ . '/../version.php';
$db = new PDO('sqlite:' . __DIR__ . '/../storage/app.sqlite');
$migrations = $db->query('SELECT COUNT(*) FROM migrations')->fetchColumn();
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<title>ferry PHP example</title>
<meta name="release" content="<?= htmlspecialchars($release) ?>">
<h1>Hello from <?= htmlspecialchars($version) ?></h1>
<p>Release <code><?= htmlspecialchars($release) ?></code>, <?= (int) $migrations ?> migration runs recorded in shared storage.</p>
