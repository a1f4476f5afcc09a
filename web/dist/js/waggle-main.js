/* Waggle: loads assets/waggle-DXWoJhB7.js relative to this script (AppAPI embeds it as a classic script). */
(function () {
	var me = document.currentScript && document.currentScript.src
	var base = new URL('../', me || document.baseURI)
	import(new URL("assets/waggle-DXWoJhB7.js", base).href).catch(function (e) {
		console.error('Waggle: could not load its interface', e)
	})
})()
