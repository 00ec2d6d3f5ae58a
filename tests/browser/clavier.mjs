// The whole path, deposit to lauréat, with the keyboard only: Tab to reach
// each control (the focus must get there, be visible and not be trapped),
// typing, Space for checkboxes and radios, arrows within a radio group,
// Enter to follow a link or send a form. Every page is checked by axe-core
// and screenshot at 1280 and 375 px.
//
// The single exception: a file input opens the system's file chooser, which
// a headless browser has not; the test reaches it with Tab, then gives it
// its file with setInputFiles.
//
// Environment: AMI_BASE_URL, AMI_CHROMIUM, AMI_SCREENSHOT_DIR,
// AMI_TOKEN_{DAR,BOSS,ACV,TI}, AMI_EXAMPLES_DIR.

import path from 'node:path';
import {
  Run,
  env,
  assert,
  expectState,
  dossierIdOf,
  tabTo,
  focused,
  isId,
  isButton,
  isLink,
  isSubmitOf,
  keyboardVerdict,
} from './lib.mjs';

const TOKENS = {
  dar: env('AMI_TOKEN_DAR'),
  boss: env('AMI_TOKEN_BOSS'),
  acv: env('AMI_TOKEN_ACV'),
  ti: env('AMI_TOKEN_TI'),
};
const EXAMPLES = env('AMI_EXAMPLES_DIR');
const PDF = path.join(EXAMPLES, 'candidature.pdf');
const XLSX = path.join(EXAMPLES, 'budget.xlsx');

const COMMUNE = 'Saint-Dié-des-Vosges';
const MOTIVATION_TI = 'Les partenariats industriels restent à préciser.';
// The message web_browser.rs imports (tests/mail-corpus/01-candidature-nevers.eml).
const ARRIVAL_SUBJECT = 'Candidature AMI – Ville de Nevers';

const pathOf = (page) => new URL(page.url()).pathname;

// Types into the control that has the focus, and checks what it holds.
async function typeHere(page, value, expected = value) {
  await page.keyboard.type(value);
  const f = await focused(page);
  const got = await page.evaluate(() => document.activeElement.value);
  assert(got === expected, `clavier : ${f.label} contient « ${got} » au lieu de « ${expected} »`);
}

// How this browser's date and time fields take typed digits: day or month
// first, with or without AM/PM. Found by typing into a blank page.
async function dateTyping(run, context) {
  const page = await context.newPage();
  await page.setContent('<input type="date" id="d"><input type="time" id="t">');
  await page.focus('#d');
  await page.keyboard.type('01022003');
  await page.focus('#t');
  await page.keyboard.type('0930');
  const [date, time] = await page.evaluate(() => [document.getElementById('d').value, document.getElementById('t').value]);
  await page.close();
  const typing = {
    date: date === '2003-02-01' ? '01102020' : '10012020',
    time: time === '09:30' ? '0930' : '0930A',
  };
  run.log(`saisie des dates : ${typing.date} ${typing.time} (essai : ${date} ${time || 'vide'})`);
  return typing;
}

async function enterAndWait(run, page) {
  await run.submit(page, () => page.keyboard.press('Enter'));
}

// « Se connecter » with the keyboard; lands on « À traiter ».
async function signIn(run, context, token, shotName) {
  const page = await context.newPage();
  await run.goto(page, '/connexion');
  if (shotName) await run.check(page, shotName);
  // The first Tab reaches the skip link to the content.
  await page.keyboard.press('Tab');
  const first = await focused(page);
  assert(first.tag === 'a' && first.href === '#contenu', `clavier : la première tabulation atteint ${first.label}, pas le lien d'évitement vers #contenu`);
  await tabTo(run, page, 'le champ #jeton', isId('jeton'));
  await typeHere(page, token);
  await tabTo(run, page, 'le bouton « Se connecter »', isButton('Se connecter'));
  await enterAndWait(run, page);
  assert(pathOf(page) === '/a-traiter', `clavier : « Se connecter » mène à ${page.url()}`);
  return page;
}

// From « À traiter », Tab to the dossier's reference and follow it.
async function openFromQueue(run, page, reference, id) {
  const f = await tabTo(run, page, `le lien ${reference}`, isLink(reference));
  assert(f.href === `/dossiers/${id}`, `clavier : le lien ${reference} mène à ${f.href}`);
  await enterAndWait(run, page);
  assert(pathOf(page) === `/dossiers/${id}`, `clavier : ${reference} mène à ${page.url()}`);
}

async function sendAction(run, page, action) {
  await tabTo(run, page, `le bouton de #action-${action}`, isSubmitOf(`action-${action}`));
  await enterAndWait(run, page);
}

const run = new Run('clavier');
await run.main(async (run) => {
  // The DAR agent deposits the dossier.
  run.log('dépôt au clavier');
  const darContext = await run.context('agent DAR');
  const dar = await signIn(run, darContext, TOKENS.dar, 'connexion');
  await run.check(dar, 'a-traiter-dar');
  await tabTo(run, dar, 'le lien « Nouveau dossier »', isLink('Nouveau dossier'));
  await enterAndWait(run, dar);
  assert(pathOf(dar) === '/dossiers/nouveau', `clavier : « Nouveau dossier » mène à ${dar.url()}`);
  await run.check(dar, 'nouveau-dossier');
  for (const [field, value] of [
    ['commune', COMMUNE],
    ['code_insee', '88413'],
    ['porteur_nom', `Ville de ${COMMUNE}`],
    ['porteur_email', 'cnam@saint-die.eu'],
  ]) {
    await tabTo(run, dar, `le champ #${field}`, isId(field));
    await typeHere(dar, value);
  }
  for (const programme of ['acv', 'ti']) {
    await tabTo(run, dar, `la case #programme-${programme}`, isId(`programme-${programme}`));
    await dar.keyboard.press('Space');
    assert(await dar.locator(`#programme-${programme}`).isChecked(), `clavier : #programme-${programme} non cochée après Espace`);
  }
  // Date and time as the person types them in the order their browser
  // shows (jj/mm/aaaa in French; Debian's Chromium without its l10n
  // package shows mm/dd/yyyy and a 12-hour clock).
  const typing = await dateTyping(run, darContext);
  await tabTo(run, dar, 'le champ #recu_le', isId('recu_le'));
  await typeHere(dar, typing.date, '2020-10-01');
  await tabTo(run, dar, 'le champ #recu_a', isId('recu_a'));
  await typeHere(dar, typing.time, '09:30');
  // The exception: the files (see the top of this file).
  for (const [field, file] of [
    ['dossier_candidature', PDF],
    ['budget_previsionnel', XLSX],
  ]) {
    await tabTo(run, dar, `le champ de fichier #${field}`, isId(field));
    await dar.locator(`#${field}`).setInputFiles(file);
  }
  await tabTo(run, dar, 'le bouton « Déposer le dossier »', isButton('Déposer le dossier'));
  await enterAndWait(run, dar);
  const id = dossierIdOf(dar.url());
  assert(id, `clavier : après le dépôt, ${dar.url()} n'est pas une page de dossier`);
  run.summary.dossier_id = id;
  await expectState(dar, 'Reçu', 'clavier : après le dépôt');
  const reference = (await run.dossier(TOKENS.dar, id)).reference;
  run.summary.reference = reference;
  await run.check(dar, 'dossier-recu');

  // Instruction.
  run.log('instruction au clavier');
  await keyboardVerdict(run, dar, 'instruire', 'favorable');
  await sendAction(run, dar, 'instruire');
  await expectState(dar, 'Instruit par la DAR', 'clavier : après l\'instruction');
  await run.check(dar, 'dossier-instruit');

  // A dossier from the imported message: « Courrier arrivé », the message,
  // the porteur typed over the sender's name, a programme ticked, the
  // rest as guessed.
  run.log('dossier depuis le courrier au clavier');
  await tabTo(run, dar, 'le lien « Courrier arrivé »', isLink('Courrier arrivé'));
  await enterAndWait(run, dar);
  assert(pathOf(dar) === '/courrier', `clavier : « Courrier arrivé » mène à ${dar.url()}`);
  await run.check(dar, 'courrier');
  await tabTo(run, dar, `le lien « ${ARRIVAL_SUBJECT} »`, isLink(ARRIVAL_SUBJECT));
  await enterAndWait(run, dar);
  const arrival = pathOf(dar).match(/^\/courrier\/([0-9a-f-]{36})$/);
  assert(arrival, `clavier : le courrier mène à ${dar.url()}`);
  run.summary.arrival_id = arrival[1];
  await run.check(dar, 'courrier-message');
  await tabTo(run, dar, 'le champ #depot-porteur_nom', isId('depot-porteur_nom'));
  await typeHere(dar, 'Ville de Nevers');
  await tabTo(run, dar, 'la case #depot-programme-acv', isId('depot-programme-acv'));
  await dar.keyboard.press('Space');
  assert(await dar.locator('#depot-programme-acv').isChecked(), 'clavier : #depot-programme-acv non cochée après Espace');
  await tabTo(run, dar, 'le bouton « Créer le dossier »', isButton('Créer le dossier'));
  await enterAndWait(run, dar);
  const fromArrival = dossierIdOf(dar.url());
  assert(fromArrival, `clavier : après « Créer le dossier », ${dar.url()} n'est pas une page de dossier`);
  run.summary.arrival_dossier_id = fromArrival;
  await expectState(dar, 'Reçu', 'clavier : le dossier créé depuis le courrier');
  await run.check(dar, 'dossier-depuis-courrier');

  // Avis ACV, favorable.
  run.log('avis ACV au clavier');
  const acvContext = await run.context('agent ACV');
  const acv = await signIn(run, acvContext, TOKENS.acv);
  await run.check(acv, 'a-traiter-acv');
  await openFromQueue(run, acv, reference, id);
  await keyboardVerdict(run, acv, 'avis_acv', 'favorable');
  await sendAction(run, acv, 'avis_acv');
  await expectState(acv, 'Avis Action Cœur de Ville rendu', 'clavier : après l\'avis ACV');
  await run.check(acv, 'dossier-avis-acv');

  // Avis TI, « Réservé » with its motivation typed.
  run.log('avis TI au clavier');
  const tiContext = await run.context('agent TI');
  const ti = await signIn(run, tiContext, TOKENS.ti);
  await run.check(ti, 'a-traiter-ti');
  await openFromQueue(run, ti, reference, id);
  await keyboardVerdict(run, ti, 'avis_ti', 'reserve');
  await tabTo(run, ti, 'le champ #avis_ti-motivation', isId('avis_ti-motivation'));
  await typeHere(ti, MOTIVATION_TI);
  await sendAction(run, ti, 'avis_ti');
  await expectState(ti, "Avis Territoires d'industrie rendu", 'clavier : après l\'avis TI');
  await run.check(ti, 'dossier-avis-ti');
  run.summary.motivation_ti = MOTIVATION_TI;

  // Lauréat, by the responsable.
  run.log('lauréat au clavier');
  const bossContext = await run.context('responsable DAR');
  const boss = await signIn(run, bossContext, TOKENS.boss);
  await run.check(boss, 'a-traiter-responsable');
  await openFromQueue(run, boss, reference, id);
  await sendAction(run, boss, 'declarer_laureat');
  await expectState(boss, 'Lauréat', 'clavier : après « Déclarer lauréat »');
  await run.check(boss, 'dossier-laureat');

  // Signing out.
  await tabTo(run, boss, 'le bouton « Se déconnecter »', isButton('Se déconnecter'));
  await enterAndWait(run, boss);
  assert(pathOf(boss) === '/connexion', `clavier : « Se déconnecter » mène à ${boss.url()}`);
});
