import './base.css';
import './chat.css';
import './autofix.css';
import './edit.css';
