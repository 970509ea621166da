// Vonage's silent auth sends the device back with `request_id` and `code` in the URL's fragment,
// which only the browser sees: move it into the query and load the page again.
(function () {
    if (location.hash.length > 1) {
        location.replace(location.pathname + '?' + location.hash.slice(1));
    } else {
        document.getElementById('m').textContent = 'This does not answer any open verification.';
    }
})();
