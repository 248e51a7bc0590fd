"""Manager-side components: store, control API, (later) orchestrators, scheduler, dispatcher."""
