// Live pages. The server sends each new event of the journal that the
// person may read (/evenements, server-sent events); this script refreshes
// the parts of the page that changed and says so in the page's live
// region. Without it the pages work the same, they just do not move.
const root = document.querySelector('[data-live-from]');
if (root && window.EventSource) {
  const dossier = root.dataset.dossier || null;
  let version = Number(root.dataset.version || 0);
  let typing = false;
  let pending = null;

  document.addEventListener('input', (e) => {
    if (e.target.closest && e.target.closest('#actions form')) typing = true;
  });

  const say = (text) => {
    const region = document.getElementById('nouvelles');
    if (!region) return;
    region.textContent = '';
    const box = document.createElement('div');
    box.className = 'fr-alert fr-alert--info fr-alert--sm fr-mb-3w';
    const p = document.createElement('p');
    p.textContent = text;
    box.appendChild(p);
    region.appendChild(box);
  };

  // Replaces the parts named by their ids with the same parts of the page
  // as the server renders it now.
  const refresh = async (ids) => {
    const response = await fetch(window.location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
    if (!response.ok) return false;
    const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
    for (const id of ids) {
      const now = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (now && next) now.replaceWith(document.importNode(next, true));
    }
    return true;
  };

  const who = (c) => (c.own ? 'Vous avez' : `${c.person} (${c.agency_label}) a`);

  const onDossier = async (c) => {
    if (c.dossier !== dossier || c.version <= version) return;
    version = c.version;
    const parts = ['etat', 'identite', 'pieces', 'avis', 'historique'];
    if (!typing) parts.push('actions');
    if (await refresh(parts)) {
      const kept = typing
        ? ' Votre saisie est conservée ; à l\u2019envoi, le service vous montrera ce qui a changé.'
        : '';
      say(`${who(c)} fait « ${c.action_label} » le ${c.at}. État du dossier : ${c.state_label}.${kept}`);
    }
  };

  const onList = (c) => {
    if (c.own) return;
    clearTimeout(pending);
    // Several events in a burst make one refresh.
    pending = setTimeout(async () => {
      if (await refresh(['liste'])) {
        say(`La liste a été mise à jour : ${c.person} (${c.agency_label}) a fait « ${c.action_label} » le ${c.at}.`);
      }
    }, 400);
  };

  const from = encodeURIComponent(root.dataset.liveFrom || '');
  const source = new EventSource(`/evenements?depuis=${from}`);
  source.addEventListener('dossier', (e) => {
    const change = JSON.parse(e.data);
    if (dossier) onDossier(change); else onList(change);
  });
  source.addEventListener('fin', () => source.close());
}
