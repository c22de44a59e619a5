// Placeholder: the console application (branch s3-d) replaces this file.
document.documentElement.dataset.ready = 'true';
