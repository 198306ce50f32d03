// The page's fixed elements and the server's settings (data-* on <body>: the CSP forbids inline script).
const byId = (id) => document.getElementById(id);

export const els = {
  app: byId('app'), mainCol: byId('main-col'), skipLink: document.querySelector('.skip-link'),
  sidebar: byId('sidebar'), scrim: byId('scrim'), convList: byId('conv-list'), convEmpty: byId('conv-empty'),
  newChat: byId('new-chat'), openSidebar: byId('sidebar-open'), closeSidebar: byId('sidebar-close'),
  exportAll: byId('export-all'), importOpen: byId('import-open'), importFile: byId('import-file'),
  storageAlert: byId('storage-alert'), storageAlertText: byId('storage-alert-text'),
  storageExport: byId('storage-export'), storagePrune: byId('storage-prune'), storageDismiss: byId('storage-dismiss'),
  title: byId('chat-title'), modelSelect: byId('model-select'),
  scroller: byId('scroller'), empty: byId('empty-state'), messages: byId('messages'), jump: byId('jump'),
  form: byId('composer'), prompt: byId('prompt'), send: byId('send'), stop: byId('stop'),
  statsModel: byId('stats-model'), statsTiming: byId('stats-timing'),
};

export const cfg = {
  apiUrl: document.body.dataset.apiUrl || '/api/streaming',
  adapter: document.body.dataset.adapter || '',
  defaultModel: document.body.dataset.defaultModel || '',
  loginUrl: document.body.dataset.loginUrl || '/login',
};
