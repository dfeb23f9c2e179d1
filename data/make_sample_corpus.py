#!/usr/bin/env python3
"""Generate the small synthetic sample pretraining corpus under data/pretrain/.

All text is produced compositionally from hand-written vocabulary and sentence
templates defined in this file; nothing is copied from external sources. The
output is fully deterministic (a single ``random.Random(1234)`` drives every
choice), so re-running the script reproduces byte-identical files.

Usage:
    python data/make_sample_corpus.py

Outputs:
    data/pretrain/medical_en.txt                 one English document per line
    data/pretrain/medical_zh.jsonl               {"text": ...} Chinese documents
    data/pretrain/guidelines/general_en.jsonl    {"text": ...} English general /
                                                 guideline-style documents

The text is synthetic and intended only for exercising the data pipeline; it
is NOT medical advice.
"""

import json
import os
import random

SEED = 1234
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "pretrain")

# ---------------------------------------------------------------------------
# English knowledge tables
# ---------------------------------------------------------------------------

EN_DISEASES = [
    {
        "name": "hypertension",
        "area": "cardiovascular medicine",
        "definition": "a persistent elevation of arterial blood pressure, usually defined as a clinic reading of 140/90 mmHg or higher on repeated measurement",
        "symptoms": ["headache", "dizziness", "blurred vision", "nosebleeds", "palpitations", "fatigue"],
        "tests": ["ambulatory blood pressure monitoring", "home blood pressure monitoring", "serum creatinine and electrolytes", "urinalysis for protein", "a 12-lead electrocardiogram", "a fasting lipid profile"],
        "drugs": [("amlodipine", "5 mg once daily", "10 mg once daily", "ankle swelling and flushing"),
                  ("lisinopril", "10 mg once daily", "40 mg once daily", "dry cough and raised potassium"),
                  ("losartan", "50 mg once daily", "100 mg once daily", "dizziness and raised potassium"),
                  ("indapamide", "1.5 mg modified-release once daily", "1.5 mg once daily", "low sodium and low potassium")],
        "advice": ["reduce dietary sodium to less than 5 g of salt per day", "take at least 150 minutes of moderate aerobic exercise each week", "limit alcohol intake", "lose weight if overweight", "stop smoking", "measure blood pressure at home on a regular schedule"],
        "complications": ["stroke", "myocardial infarction", "heart failure", "chronic kidney disease", "hypertensive retinopathy"],
        "risks": ["older age", "obesity", "high salt intake", "physical inactivity", "a family history of hypertension", "excess alcohol use"],
        "follow": "review blood pressure every four weeks until the target is reached and then every three to six months",
        "target": "a clinic blood pressure below 130/80 mmHg for most adults who tolerate treatment",
        "red": ["severe headache with confusion", "chest pain", "sudden weakness of one side of the body", "a blood pressure above 180/120 mmHg"],
    },
    {
        "name": "type 2 diabetes",
        "area": "endocrinology",
        "definition": "a chronic metabolic disorder characterised by insulin resistance and progressive loss of beta-cell function, leading to raised blood glucose",
        "symptoms": ["increased thirst", "frequent urination", "fatigue", "blurred vision", "unexplained weight loss", "slow-healing wounds", "recurrent skin infections"],
        "tests": ["glycated haemoglobin (HbA1c)", "fasting plasma glucose", "an oral glucose tolerance test", "urine albumin-to-creatinine ratio", "a dilated retinal examination", "a foot examination with monofilament testing"],
        "drugs": [("metformin", "500 mg twice daily with meals", "1000 mg twice daily", "nausea, diarrhoea and abdominal discomfort"),
                  ("empagliflozin", "10 mg once daily", "25 mg once daily", "genital fungal infection and volume depletion"),
                  ("semaglutide", "0.25 mg subcutaneously once weekly", "1 mg once weekly", "nausea and reduced appetite"),
                  ("insulin glargine", "10 units at bedtime", "a dose titrated to fasting glucose", "hypoglycaemia and weight gain"),
                  ("gliclazide", "40 mg once daily", "160 mg twice daily", "hypoglycaemia")],
        "advice": ["follow a diet rich in vegetables, whole grains and legumes", "reduce intake of sugary drinks", "aim for gradual weight loss of 5 to 10 percent", "check the feet daily for cuts and blisters", "attend an annual eye screening", "walk briskly for at least 30 minutes on most days"],
        "complications": ["diabetic retinopathy", "peripheral neuropathy", "diabetic kidney disease", "foot ulceration", "coronary artery disease", "stroke"],
        "risks": ["obesity", "a sedentary lifestyle", "a family history of diabetes", "previous gestational diabetes", "older age", "polycystic ovary syndrome"],
        "follow": "measure HbA1c every three months until stable and then every six months",
        "target": "an HbA1c of around 53 mmol/mol (7.0 percent) for most adults, individualised according to frailty and hypoglycaemia risk",
        "red": ["vomiting with abdominal pain", "confusion or drowsiness", "very high glucose readings with ketones", "repeated severe hypoglycaemia"],
    },
    {
        "name": "asthma",
        "area": "respiratory medicine",
        "definition": "a chronic inflammatory disease of the airways with variable airflow obstruction and bronchial hyperresponsiveness",
        "symptoms": ["wheeze", "cough that is worse at night", "chest tightness", "shortness of breath", "symptoms triggered by exercise or cold air"],
        "tests": ["spirometry with bronchodilator reversibility", "serial peak expiratory flow measurements", "fractional exhaled nitric oxide", "a blood eosinophil count"],
        "drugs": [("budesonide-formoterol", "one inhalation as needed for symptom relief", "two inhalations twice daily as maintenance", "hoarseness and oral thrush"),
                  ("inhaled fluticasone", "100 micrograms twice daily", "250 micrograms twice daily", "hoarseness and oral thrush"),
                  ("salbutamol", "100 to 200 micrograms as needed", "up to four times daily during exacerbations", "tremor and palpitations"),
                  ("montelukast", "10 mg once daily in the evening", "10 mg once daily", "sleep disturbance and mood changes")],
        "advice": ["use a written asthma action plan", "rinse the mouth after each dose of inhaled steroid", "check inhaler technique at every visit", "avoid known triggers such as smoke and allergens", "receive an annual influenza vaccination"],
        "complications": ["acute severe exacerbation", "respiratory failure", "airway remodelling", "reduced quality of life"],
        "risks": ["atopy", "a family history of asthma", "exposure to tobacco smoke", "occupational sensitisers", "obesity"],
        "follow": "review symptom control, inhaler technique and adherence at least once a year and within four weeks after any exacerbation",
        "target": "minimal daytime symptoms, no night waking and no limitation of activity",
        "red": ["inability to complete sentences", "oxygen saturation below 92 percent", "a silent chest", "exhaustion or confusion"],
    },
    {
        "name": "chronic obstructive pulmonary disease",
        "area": "respiratory medicine",
        "definition": "a progressive lung disease with persistent airflow limitation, most often caused by long-term exposure to tobacco smoke",
        "symptoms": ["chronic cough", "daily sputum production", "breathlessness on exertion", "wheeze", "frequent chest infections"],
        "tests": ["post-bronchodilator spirometry", "a chest radiograph", "pulse oximetry", "a full blood count", "alpha-1 antitrypsin level in younger patients"],
        "drugs": [("tiotropium", "18 micrograms inhaled once daily", "18 micrograms once daily", "dry mouth and urinary retention"),
                  ("salmeterol", "50 micrograms inhaled twice daily", "50 micrograms twice daily", "tremor and palpitations"),
                  ("prednisolone", "30 mg once daily for five days during exacerbations", "30 mg once daily", "raised glucose and mood changes"),
                  ("doxycycline", "200 mg on day one then 100 mg daily", "a five-day course", "photosensitivity and gastric upset")],
        "advice": ["stop smoking completely", "join a pulmonary rehabilitation programme", "receive influenza and pneumococcal vaccines", "keep a rescue pack of medicines at home if advised", "stay physically active within limits of breathlessness"],
        "complications": ["acute exacerbations", "cor pulmonale", "chronic respiratory failure", "pneumothorax", "weight loss and muscle wasting"],
        "risks": ["cigarette smoking", "biomass fuel exposure", "occupational dust exposure", "alpha-1 antitrypsin deficiency", "recurrent childhood chest infections"],
        "follow": "review at least annually with spirometry, symptom scoring and a check of inhaler technique",
        "target": "fewer exacerbations, better exercise tolerance and slower decline in lung function",
        "red": ["increasing drowsiness", "cyanosis", "severe breathlessness at rest", "new confusion"],
    },
    {
        "name": "community-acquired pneumonia",
        "area": "infectious diseases",
        "definition": "an acute infection of the lung parenchyma acquired outside hospital",
        "symptoms": ["fever", "productive cough", "pleuritic chest pain", "shortness of breath", "rigors", "confusion in older adults"],
        "tests": ["a chest radiograph", "a full blood count", "C-reactive protein", "blood cultures", "pulse oximetry", "urea and electrolytes"],
        "drugs": [("amoxicillin", "500 mg three times daily", "1 g three times daily", "rash and diarrhoea"),
                  ("doxycycline", "200 mg on day one then 100 mg daily", "a five-day course", "photosensitivity and gastric upset"),
                  ("clarithromycin", "500 mg twice daily", "500 mg twice daily", "taste disturbance and QT prolongation"),
                  ("ceftriaxone", "1 g intravenously once daily", "2 g once daily", "diarrhoea and allergic reactions")],
        "advice": ["drink enough fluid to stay well hydrated", "take the full course of antibiotics", "rest until the fever settles", "seek review if symptoms do not improve within three days", "receive pneumococcal vaccination when eligible"],
        "complications": ["sepsis", "parapneumonic effusion", "empyema", "lung abscess", "acute respiratory distress syndrome"],
        "risks": ["older age", "smoking", "chronic lung disease", "diabetes", "immunosuppression", "alcohol misuse"],
        "follow": "reassess clinically at 48 to 72 hours and arrange a repeat chest radiograph at six weeks for smokers and adults over 50",
        "target": "resolution of fever and improvement in breathlessness within a few days",
        "red": ["a respiratory rate above 30 per minute", "systolic blood pressure below 90 mmHg", "new confusion", "oxygen saturation below 92 percent"],
    },
    {
        "name": "chronic heart failure",
        "area": "cardiology",
        "definition": "a clinical syndrome in which the heart cannot pump enough blood to meet the needs of the body, often with reduced ejection fraction",
        "symptoms": ["breathlessness on exertion", "orthopnoea", "paroxysmal nocturnal dyspnoea", "ankle swelling", "fatigue", "reduced exercise tolerance"],
        "tests": ["a transthoracic echocardiogram", "N-terminal pro-B-type natriuretic peptide", "a 12-lead electrocardiogram", "a chest radiograph", "renal function and electrolytes"],
        "drugs": [("furosemide", "20 to 40 mg once daily", "a dose adjusted to fluid status", "dehydration and low potassium"),
                  ("bisoprolol", "1.25 mg once daily", "10 mg once daily", "bradycardia and fatigue"),
                  ("sacubitril-valsartan", "24/26 mg twice daily", "97/103 mg twice daily", "hypotension and raised potassium"),
                  ("spironolactone", "25 mg once daily", "50 mg once daily", "raised potassium and breast tenderness"),
                  ("dapagliflozin", "10 mg once daily", "10 mg once daily", "genital infection and volume depletion")],
        "advice": ["weigh yourself every morning", "report a weight gain of more than 2 kg in three days", "limit fluid intake if advised", "avoid non-steroidal anti-inflammatory drugs", "take part in cardiac rehabilitation"],
        "complications": ["acute decompensation", "ventricular arrhythmias", "sudden cardiac death", "renal impairment", "cardiac cachexia"],
        "risks": ["coronary artery disease", "long-standing hypertension", "valvular heart disease", "diabetes", "alcohol excess"],
        "follow": "review every two weeks during dose titration and then every three to six months when stable",
        "target": "relief of congestion and up-titration of disease-modifying drugs to the maximum tolerated doses",
        "red": ["breathlessness at rest", "chest pain", "fainting", "rapid weight gain with swelling"],
    },
    {
        "name": "atrial fibrillation",
        "area": "cardiology",
        "definition": "an irregular and often rapid heart rhythm caused by disorganised electrical activity in the atria",
        "symptoms": ["palpitations", "an irregular pulse", "breathlessness", "dizziness", "reduced exercise tolerance", "chest discomfort"],
        "tests": ["a 12-lead electrocardiogram", "ambulatory ECG monitoring", "an echocardiogram", "thyroid function tests", "renal function for anticoagulant dosing"],
        "drugs": [("apixaban", "5 mg twice daily", "5 mg twice daily", "bleeding"),
                  ("bisoprolol", "2.5 mg once daily", "10 mg once daily", "bradycardia and fatigue"),
                  ("diltiazem", "60 mg three times daily", "360 mg daily in divided doses", "ankle swelling and constipation"),
                  ("edoxaban", "60 mg once daily", "60 mg once daily", "bleeding")],
        "advice": ["take anticoagulants at the same time every day", "report any unusual bleeding", "limit alcohol and caffeine if they trigger symptoms", "treat sleep apnoea if present", "keep blood pressure well controlled"],
        "complications": ["ischaemic stroke", "systemic embolism", "tachycardia-induced cardiomyopathy", "heart failure"],
        "risks": ["older age", "hypertension", "heart failure", "valvular disease", "obesity", "excess alcohol use"],
        "follow": "review heart rate, symptoms, stroke risk and bleeding risk at least annually",
        "target": "a resting heart rate below 110 beats per minute and effective stroke prevention",
        "red": ["fainting", "chest pain", "sudden weakness or speech difficulty", "a heart rate above 150 beats per minute"],
    },
    {
        "name": "chronic kidney disease",
        "area": "nephrology",
        "definition": "abnormalities of kidney structure or function present for more than three months, most often detected by a reduced eGFR or albuminuria",
        "symptoms": ["fatigue", "ankle swelling", "itching", "loss of appetite", "nocturia", "muscle cramps"],
        "tests": ["estimated glomerular filtration rate", "urine albumin-to-creatinine ratio", "a renal ultrasound", "serum potassium and bicarbonate", "a full blood count"],
        "drugs": [("ramipril", "1.25 mg once daily", "10 mg once daily", "dry cough and raised potassium"),
                  ("dapagliflozin", "10 mg once daily", "10 mg once daily", "genital infection and volume depletion"),
                  ("atorvastatin", "20 mg once daily", "80 mg once daily", "muscle aches"),
                  ("sodium bicarbonate", "500 mg three times daily", "a dose guided by serum bicarbonate", "bloating")],
        "advice": ["avoid over-the-counter anti-inflammatory painkillers", "keep blood pressure in the target range", "check with a pharmacist before starting new medicines", "follow a moderate-protein diet if advised", "stay well hydrated during illness unless told otherwise"],
        "complications": ["end-stage kidney disease", "cardiovascular disease", "renal anaemia", "mineral and bone disorder", "hyperkalaemia"],
        "risks": ["diabetes", "hypertension", "older age", "a family history of kidney disease", "recurrent acute kidney injury"],
        "follow": "monitor eGFR and albuminuria at intervals determined by the stage, typically every three to twelve months",
        "target": "slower decline in kidney function and reduction of cardiovascular risk",
        "red": ["a sudden fall in urine output", "potassium above 6.0 mmol/L", "breathlessness from fluid overload", "confusion"],
    },
    {
        "name": "hypothyroidism",
        "area": "endocrinology",
        "definition": "a condition in which the thyroid gland produces insufficient thyroid hormone",
        "symptoms": ["tiredness", "cold intolerance", "weight gain", "constipation", "dry skin", "low mood", "hair thinning"],
        "tests": ["serum thyroid-stimulating hormone", "free thyroxine", "thyroid peroxidase antibodies", "a fasting lipid profile"],
        "drugs": [("levothyroxine", "50 to 100 micrograms once daily", "about 1.6 micrograms per kilogram per day", "palpitations and insomnia if over-replaced")],
        "advice": ["take levothyroxine on an empty stomach at the same time each day", "separate the dose from iron or calcium supplements by four hours", "inform the clinic early in any pregnancy", "have thyroid function checked after any dose change"],
        "complications": ["hyperlipidaemia", "infertility", "myxoedema coma", "adverse pregnancy outcomes"],
        "risks": ["female sex", "autoimmune disease", "previous thyroid surgery", "radioactive iodine treatment", "older age"],
        "follow": "recheck TSH six to eight weeks after each dose change and then annually once stable",
        "target": "a TSH within the reference range with resolution of symptoms",
        "red": ["marked drowsiness", "very low body temperature", "slow heart rate with confusion"],
    },
    {
        "name": "migraine",
        "area": "neurology",
        "definition": "a primary headache disorder characterised by recurrent attacks of moderate to severe headache with associated features",
        "symptoms": ["throbbing one-sided headache", "nausea", "sensitivity to light", "sensitivity to sound", "visual aura", "worsening with routine activity"],
        "tests": ["a headache diary", "a careful neurological examination", "fundoscopy", "blood pressure measurement"],
        "drugs": [("sumatriptan", "50 mg at the onset of headache", "100 mg per dose", "chest tightness and tingling"),
                  ("ibuprofen", "400 mg at onset", "400 mg three times daily", "indigestion"),
                  ("propranolol", "40 mg twice daily for prevention", "80 mg twice daily", "fatigue and cold hands"),
                  ("amitriptyline", "10 mg at night for prevention", "50 mg at night", "dry mouth and drowsiness")],
        "advice": ["keep regular sleep and meal times", "limit acute medicines to fewer than ten days per month", "identify and avoid personal triggers", "stay well hydrated", "record attacks in a diary"],
        "complications": ["medication overuse headache", "chronic migraine", "status migrainosus"],
        "risks": ["female sex", "a family history of migraine", "irregular sleep", "stress", "hormonal changes"],
        "follow": "review the headache diary after two to three months of preventive treatment",
        "target": "at least a 50 percent reduction in headache days",
        "red": ["a sudden thunderclap headache", "headache with fever and neck stiffness", "new neurological deficit", "new headache after age 50"],
    },
    {
        "name": "gastro-oesophageal reflux disease",
        "area": "gastroenterology",
        "definition": "a condition in which reflux of stomach contents causes troublesome symptoms or complications",
        "symptoms": ["heartburn", "acid regurgitation", "chest discomfort after meals", "a chronic cough", "hoarseness"],
        "tests": ["a trial of acid suppression", "upper gastrointestinal endoscopy", "ambulatory oesophageal pH monitoring"],
        "drugs": [("omeprazole", "20 mg once daily before breakfast", "40 mg once daily", "headache and diarrhoea"),
                  ("lansoprazole", "30 mg once daily", "30 mg twice daily", "headache and diarrhoea"),
                  ("alginate suspension", "10 to 20 mL after meals and at bedtime", "four times daily", "bloating")],
        "advice": ["avoid large meals late in the evening", "raise the head of the bed", "lose weight if overweight", "reduce alcohol, coffee and fatty food if they trigger symptoms", "stop smoking"],
        "complications": ["oesophagitis", "oesophageal stricture", "Barrett's oesophagus", "bleeding"],
        "risks": ["obesity", "hiatus hernia", "pregnancy", "smoking", "large late meals"],
        "follow": "review after four to eight weeks and step down to the lowest effective dose",
        "target": "control of symptoms with the lowest effective dose of acid suppression",
        "red": ["difficulty swallowing", "unintentional weight loss", "vomiting blood", "black tarry stools"],
    },
    {
        "name": "knee osteoarthritis",
        "area": "rheumatology",
        "definition": "a degenerative joint condition with loss of articular cartilage and changes in the underlying bone",
        "symptoms": ["joint pain worse with activity", "morning stiffness lasting less than 30 minutes", "crepitus", "reduced range of movement", "joint swelling"],
        "tests": ["a clinical examination of the knee", "weight-bearing knee radiographs", "inflammatory markers"],
        "drugs": [("topical diclofenac", "applied to the knee three times daily", "four times daily", "local skin irritation"),
                  ("paracetamol", "1 g up to four times daily", "4 g per day", "liver toxicity in overdose"),
                  ("naproxen", "250 mg twice daily", "500 mg twice daily", "indigestion and gastrointestinal bleeding")],
        "advice": ["do muscle-strengthening exercises for the thigh", "lose weight if overweight", "use supportive footwear", "stay active with low-impact exercise such as swimming or cycling", "pace activities through the day"],
        "complications": ["chronic pain", "reduced mobility", "falls", "joint deformity"],
        "risks": ["older age", "obesity", "previous knee injury", "female sex", "occupations with repetitive kneeling"],
        "follow": "review pain, function and exercise adherence every few months",
        "target": "less pain and better function without surgery where possible",
        "red": ["a hot, swollen joint with fever", "inability to bear weight after injury", "rapidly progressive deformity"],
    },
    {
        "name": "major depressive disorder",
        "area": "psychiatry",
        "definition": "a mood disorder with persistent low mood or loss of interest lasting at least two weeks and affecting daily function",
        "symptoms": ["persistent low mood", "loss of interest or pleasure", "sleep disturbance", "poor concentration", "fatigue", "feelings of worthlessness", "changes in appetite"],
        "tests": ["the PHQ-9 questionnaire", "a risk assessment for self-harm", "thyroid function tests", "a full blood count"],
        "drugs": [("sertraline", "50 mg once daily", "200 mg once daily", "nausea and sleep disturbance"),
                  ("citalopram", "20 mg once daily", "40 mg once daily", "nausea and QT prolongation"),
                  ("mirtazapine", "15 mg at night", "45 mg at night", "weight gain and sedation")],
        "advice": ["keep a regular daily routine", "take some physical activity every day", "stay in contact with friends and family", "avoid alcohol", "continue medication for at least six months after recovery"],
        "complications": ["self-harm", "suicide", "impaired work and social function", "substance misuse"],
        "risks": ["previous episodes", "a family history of depression", "chronic physical illness", "social isolation", "adverse life events"],
        "follow": "review within two weeks of starting an antidepressant and then every two to four weeks for the first three months",
        "target": "remission of symptoms and return to usual function",
        "red": ["suicidal thoughts with a plan", "psychotic symptoms", "inability to eat or drink", "severe agitation"],
    },
    {
        "name": "uncomplicated urinary tract infection",
        "area": "infectious diseases",
        "definition": "a bacterial infection of the lower urinary tract in a non-pregnant adult without structural abnormality",
        "symptoms": ["painful urination", "urinary frequency", "urgency", "suprapubic pain", "cloudy urine", "blood in the urine"],
        "tests": ["a urine dipstick", "a midstream urine culture", "a pregnancy test where relevant"],
        "drugs": [("nitrofurantoin", "100 mg modified-release twice daily", "a three-day course", "nausea and dark urine"),
                  ("trimethoprim", "200 mg twice daily", "a three-day course", "rash and raised potassium"),
                  ("fosfomycin", "3 g as a single dose", "3 g once", "diarrhoea")],
        "advice": ["drink enough fluid to pass pale urine", "use simple pain relief", "seek review if symptoms persist after 48 hours of treatment", "empty the bladder after intercourse"],
        "complications": ["pyelonephritis", "urosepsis", "recurrent infection"],
        "risks": ["female sex", "sexual activity", "menopause", "diabetes", "incomplete bladder emptying"],
        "follow": "no routine follow-up is needed if symptoms resolve",
        "target": "resolution of symptoms within a few days",
        "red": ["loin pain", "fever with rigors", "vomiting", "symptoms in pregnancy"],
    },
    {
        "name": "iron deficiency anaemia",
        "area": "haematology",
        "definition": "a reduction in haemoglobin caused by depleted iron stores",
        "symptoms": ["fatigue", "pallor", "breathlessness on exertion", "palpitations", "brittle nails", "hair loss", "restless legs"],
        "tests": ["a full blood count", "serum ferritin", "coeliac serology", "upper and lower gastrointestinal endoscopy"],
        "drugs": [("ferrous sulfate", "200 mg once daily or on alternate days", "200 mg once daily", "constipation and dark stools"),
                  ("ferrous fumarate", "210 mg once daily", "210 mg twice daily", "constipation and nausea"),
                  ("intravenous iron", "a single infusion calculated by body weight", "as calculated", "infusion reactions")],
        "advice": ["take iron tablets with water or orange juice rather than tea", "eat iron-rich foods such as lean meat, pulses and leafy greens", "continue iron for three months after haemoglobin normalises", "report heavy menstrual bleeding"],
        "complications": ["high-output heart failure", "poor pregnancy outcomes", "impaired cognitive function"],
        "risks": ["heavy menstrual bleeding", "pregnancy", "a vegetarian diet", "gastrointestinal blood loss", "malabsorption"],
        "follow": "recheck haemoglobin after two to four weeks of treatment",
        "target": "a rise in haemoglobin of about 20 g/L within four weeks",
        "red": ["rectal bleeding", "unexplained weight loss", "breathlessness at rest", "chest pain"],
    },
    {
        "name": "gout",
        "area": "rheumatology",
        "definition": "an inflammatory arthritis caused by deposition of monosodium urate crystals in and around joints",
        "symptoms": ["sudden severe joint pain", "redness over the joint", "swelling of the big toe", "exquisite tenderness", "pain that peaks within 24 hours"],
        "tests": ["serum urate measured after the flare settles", "joint aspiration for crystal analysis", "renal function", "a fasting glucose and lipid profile"],
        "drugs": [("colchicine", "500 micrograms two to four times daily during a flare", "a maximum of 6 mg per course", "diarrhoea"),
                  ("naproxen", "500 mg twice daily during a flare", "500 mg twice daily", "indigestion and gastrointestinal bleeding"),
                  ("allopurinol", "100 mg once daily", "a dose titrated to serum urate", "rash"),
                  ("febuxostat", "80 mg once daily", "120 mg once daily", "liver enzyme changes")],
        "advice": ["limit alcohol, especially beer", "reduce intake of sugary drinks", "lose weight if overweight", "continue urate-lowering therapy during flares", "rest and elevate the affected joint during an attack"],
        "complications": ["tophi", "chronic gouty arthritis", "kidney stones", "joint damage"],
        "risks": ["male sex", "obesity", "high alcohol intake", "diuretic use", "chronic kidney disease"],
        "follow": "check serum urate every four weeks during titration of urate-lowering therapy",
        "target": "a serum urate below 360 micromol/L",
        "red": ["fever with a hot joint", "multiple inflamed joints", "a prosthetic joint that is swollen"],
    },
    {
        "name": "osteoporosis",
        "area": "metabolic bone disease",
        "definition": "a skeletal disorder with low bone mass and deterioration of bone microarchitecture, leading to fragility fractures",
        "symptoms": ["a fracture after a minor fall", "back pain from vertebral fracture", "loss of height", "a stooped posture"],
        "tests": ["dual-energy X-ray absorptiometry", "a fracture risk assessment score", "serum calcium and vitamin D", "renal and liver function"],
        "drugs": [("alendronic acid", "70 mg once weekly", "70 mg once weekly", "oesophageal irritation"),
                  ("risedronate", "35 mg once weekly", "35 mg once weekly", "oesophageal irritation"),
                  ("denosumab", "60 mg subcutaneously every six months", "60 mg every six months", "low calcium"),
                  ("calcium and vitamin D", "1 g calcium with 800 units colecalciferol daily", "as above", "constipation")],
        "advice": ["take alendronic acid with a full glass of water and remain upright for 30 minutes", "do regular weight-bearing exercise", "reduce fall risks at home", "stop smoking", "limit alcohol"],
        "complications": ["hip fracture", "vertebral fracture", "wrist fracture", "chronic pain", "loss of independence"],
        "risks": ["older age", "female sex after menopause", "long-term steroid use", "low body weight", "a previous fragility fracture"],
        "follow": "reassess fracture risk after three to five years of bisphosphonate treatment",
        "target": "reduction in fracture risk",
        "red": ["sudden severe back pain", "a fall with inability to stand", "jaw pain or exposed bone"],
    },
]

EN_AGE_GROUPS = ["adults", "older adults", "adults over 65", "patients with multiple long-term conditions", "people of working age", "frail older people", "patients in primary care"]
EN_SETTINGS = ["in primary care", "in the emergency department", "on the medical ward", "in the outpatient clinic", "in community pharmacy", "in general practice"]
EN_EVIDENCE = ["strong recommendation, high-quality evidence", "strong recommendation, moderate-quality evidence", "conditional recommendation, low-quality evidence", "good practice point", "conditional recommendation, moderate-quality evidence"]
EN_DURATIONS = ["two-day", "three-day", "one-week", "two-week", "three-week", "one-month", "three-month", "six-month"]
EN_OCCUPATIONS = ["a bus driver", "an office worker", "a farmer", "a nurse", "a shop assistant", "a construction worker", "an accountant", "a chef", "a software developer", "a police officer"]
EN_SEX = ["man", "woman"]
EN_OLD_GROUPS = ["older adults", "adults over 65", "frail older people", "patients with reduced kidney function", "people over 80"]
EN_JOBS_YOUNG = ["a university student", "a trainee electrician", "a shop assistant"]
EN_JOBS_RETIRED = ["a retired teacher", "a retired engineer", "a retired farmer", "a retired nurse"]

EN_SHORT_TEMPLATES = [
    "{Name} commonly presents with {s1} and {s2}, although some patients have no symptoms at all.",
    "Patients with {name} should {adv}.",
    "{Drug} is usually started at {dose} in {pop} with {name}.",
    "Untreated {name} increases the risk of {c1} and {c2}.",
    "The diagnosis of {name} is supported by {t1} and {t2}.",
    "Common adverse effects of {drug} include {ae}.",
    "{Risk} is an important risk factor for {name}.",
    "Urgent assessment is needed when a patient with {name} develops {red}.",
    "For most patients with {name}, the treatment goal is {target}.",
    "Clinicians should {follow} in patients with {name}.",
    "{Name} is {definition}.",
    "In {pop_old}, {name} may present atypically, so a low threshold for {t1} is advised.",
    "Before prescribing {drug}, check for interactions and review {t1}.",
    "Education about {name} should explain why it is important to {adv}.",
    "{S1} in a patient with {risk} should prompt consideration of {name}.",
]

EN_PARA_OPENERS = [
    "{Name} is {definition}.",
    "{Name} is one of the most common conditions managed {setting}.",
    "This summary describes the assessment and management of {name} in {pop}.",
    "{Name} is a frequent reason for consultation {setting}, and its burden is rising as the population ages.",
]

EN_BODY_TEMPLATES = [
    "Typical features include {s1}, {s2} and {s3}.",
    "Many patients first notice {s1}, which may be accompanied by {s2}.",
    "Risk factors include {r1}, {r2} and {r3}.",
    "The initial evaluation should include {t1} and {t2}.",
    "Further investigations such as {t1} help to confirm the diagnosis and assess complications.",
    "First-line treatment is often {drug}, started at {dose} and increased to {max} if needed.",
    "{Drug} may be added when control remains inadequate; common adverse effects include {ae}.",
    "Patients should be advised to {adv1} and to {adv2}.",
    "Lifestyle measures remain central: patients should {adv1}.",
    "Without adequate treatment, {name} can lead to {c1} or {c2}.",
    "Clinicians should {follow}.",
    "The goal of treatment is {target}.",
    "Patients should seek urgent help if they develop {red1} or {red2}.",
    "Shared decision-making is important, and the benefits and harms of {drug} should be discussed openly.",
    "Adherence is often poor, so each review should ask about missed doses and side effects of {drug}.",
    "In {pop_old}, doses may need to be reduced and monitoring should be more frequent.",
    "Comorbid {other} is common and should be managed at the same time.",
    "The presence of {red1} suggests a more serious problem and warrants referral.",
    "A structured review {setting} allows medicines, symptoms and goals to be revisited.",
    "Written information should be given to support verbal advice about {name}.",
]

EN_CASE_TEMPLATES = [
    "{A} {age}-year-old {sex}, {job}, presented {setting} with a {dur} history of {s1} and {s2}.",
    "The past medical history included {other}, and the patient reported {risk}.",
    "On examination the patient appeared comfortable, and the findings were consistent with {name}.",
    "Investigations included {t1} and {t2}, which supported the diagnosis.",
    "Treatment was started with {drug} at {dose}.",
    "The patient was advised to {adv1} and to {adv2}.",
    "At follow-up after {weeks} weeks, symptoms had improved and no adverse effects were reported apart from mild {ae_short}.",
    "The plan was to {follow}.",
    "Safety-netting advice was given to return immediately in case of {red1}.",
]

EN_GUIDE_SECTIONS = [
    ("Scope and purpose", [
        "This guideline covers the recognition, diagnosis and management of {name} in {pop}.",
        "It is intended for clinicians working {setting} and for people who plan local services.",
        "The recommendations aim to reduce variation in care and to improve outcomes such as {c1} and {c2}.",
        "The guideline does not cover children or pregnant women unless stated otherwise.",
        "Recommendations are graded by the strength of the underlying evidence.",
    ]),
    ("Definition and epidemiology", [
        "{Name} is {definition}.",
        "The condition is common and its prevalence increases with age.",
        "Important risk factors include {r1}, {r2} and {r3}.",
        "Many cases remain undiagnosed because early disease may cause few symptoms.",
        "The burden of {name} is highest in groups with limited access to care.",
        "{Name} frequently coexists with {other}, which complicates treatment decisions.",
    ]),
    ("Clinical presentation", [
        "Typical presenting features include {s1}, {s2} and {s3}.",
        "Symptoms may be subtle in {pop_old}, and {s1} may be the only complaint.",
        "A focused history should ask about {s2}, the duration of symptoms and any triggers.",
        "Clinicians should ask specifically about {red1} and {red2}.",
        "Physical examination should record vital signs, body mass index and signs of {c1}.",
    ]),
    ("Diagnosis and investigations", [
        "Offer {t1} as part of the initial assessment of people with suspected {name}.",
        "Consider {t2} when the initial assessment is inconclusive.",
        "Do not rely on a single abnormal result; repeat the measurement before labelling a patient with {name}.",
        "Record the results of {t3} at baseline, before starting drug treatment.",
        "Refer for specialist assessment if the diagnosis remains uncertain after initial investigations.",
        "Document the results clearly and share them with the patient.",
    ]),
    ("Non-pharmacological management", [
        "Advise all patients to {adv1}.",
        "Support people to {adv2}, using structured programmes where available.",
        "Explain that lifestyle measures are effective on their own in some patients and enhance the effect of medicines in others.",
        "Provide written information in an accessible format.",
        "Offer referral to a dietitian, physiotherapist or psychologist where appropriate.",
        "Review progress with lifestyle goals at each visit and set new targets jointly.",
    ]),
    ("Pharmacological management", [
        "Offer {drug} as first-line treatment, starting at {dose}.",
        "Titrate {drug} towards {max} according to response and tolerability.",
        "Warn patients that common adverse effects of {drug} include {ae}.",
        "If the response is inadequate, consider adding {drug2} at {dose2}.",
        "Review renal function and potassium within two weeks of starting or changing doses where relevant.",
        "Avoid combining medicines with similar mechanisms of action.",
        "Reduce the medicine burden in frail patients when the risks of treatment outweigh the benefits.",
        "Check adherence and inhaler or injection technique before escalating therapy.",
    ]),
    ("Monitoring and follow-up", [
        "Clinicians should {follow}.",
        "The target for most patients is {target}.",
        "Use {t1} to monitor the response to treatment.",
        "Record adverse effects, adherence and patient-reported outcomes at each review.",
        "Agree a personalised care plan and review it at least once a year.",
        "Consider remote monitoring for patients who find it difficult to attend the clinic.",
    ]),
    ("Referral and urgent care", [
        "Refer urgently if a patient with {name} develops {red1}.",
        "Arrange same-day assessment for {red2}.",
        "Refer to a specialist in {area} when the condition is not controlled despite optimal treatment.",
        "Consider specialist advice for people with {c1} or significant comorbidity.",
        "Ensure that discharge summaries include the current medicines and the plan for follow-up.",
    ]),
    ("Special populations", [
        "In {pop_old}, start medicines at lower doses and increase them slowly.",
        "Pregnant women with {name} should be managed jointly with an obstetric team.",
        "Review drug doses in patients with reduced kidney function.",
        "Take account of cognitive impairment, frailty and the patient's own priorities.",
        "For patients with {other}, choose treatments that benefit both conditions where possible.",
    ]),
    ("Patient information", [
        "Explain what {name} is and how it may affect daily life.",
        "Discuss the purpose, benefits and possible harms of {drug}.",
        "Encourage patients to {adv1} and to {adv2}.",
        "Tell patients to seek urgent help in case of {red1}.",
        "Provide contact details for the clinical team and information about local support groups.",
    ]),
]

# ---------------------------------------------------------------------------
# Chinese knowledge tables
# ---------------------------------------------------------------------------

ZH_DISEASES = [
    {
        "name": "高血压", "area": "心血管内科",
        "definition": "以体循环动脉压持续升高为主要特征的慢性疾病，诊室血压多次测量收缩压≥140 mmHg和（或）舒张压≥90 mmHg即可诊断",
        "symptoms": ["头痛", "头晕", "颈项僵硬", "心悸", "视物模糊", "疲乏无力", "耳鸣"],
        "tests": ["动态血压监测", "家庭血压监测", "血肌酐及电解质", "尿常规及尿微量白蛋白", "十二导联心电图", "空腹血脂", "心脏超声"],
        "drugs": [("氨氯地平", "5 mg，每日一次", "10 mg，每日一次", "踝部水肿、面部潮红"),
                  ("缬沙坦", "80 mg，每日一次", "160 mg，每日一次", "头晕、血钾升高"),
                  ("培哚普利", "4 mg，每日一次", "8 mg，每日一次", "干咳、血钾升高"),
                  ("吲达帕胺缓释片", "1.5 mg，每日一次", "1.5 mg，每日一次", "低钠血症、低钾血症"),
                  ("美托洛尔缓释片", "47.5 mg，每日一次", "95 mg，每日一次", "心动过缓、乏力")],
        "advice": ["每日食盐摄入量控制在5克以下", "每周进行至少150分钟中等强度有氧运动", "戒烟限酒", "控制体重", "保持规律作息和情绪稳定", "坚持家庭自测血压并做好记录"],
        "complications": ["脑卒中", "心肌梗死", "心力衰竭", "慢性肾脏病", "高血压视网膜病变"],
        "risks": ["高盐饮食", "超重或肥胖", "长期精神紧张", "过量饮酒", "缺乏体力活动", "高血压家族史"],
        "follow": "血压未达标时每2至4周随访一次，达标后每3个月随访一次",
        "target": "一般患者血压控制在130/80 mmHg以下，老年患者可适当放宽",
        "red": ["剧烈头痛伴恶心呕吐", "胸痛", "一侧肢体无力或言语不清", "血压超过180/120 mmHg"],
    },
    {
        "name": "2型糖尿病", "area": "内分泌科",
        "definition": "以胰岛素抵抗和胰岛β细胞功能进行性减退为主要病理基础、以慢性高血糖为特征的代谢性疾病",
        "symptoms": ["多饮", "多尿", "多食", "体重下降", "乏力", "视物模糊", "皮肤瘙痒", "伤口愈合缓慢"],
        "tests": ["空腹血糖", "口服葡萄糖耐量试验", "糖化血红蛋白", "尿白蛋白/肌酐比值", "眼底检查", "足部神经病变筛查"],
        "drugs": [("二甲双胍", "0.5 g，每日两次，随餐服用", "每日2 g", "恶心、腹泻、腹部不适"),
                  ("达格列净", "10 mg，每日一次", "10 mg，每日一次", "生殖器真菌感染、血容量不足"),
                  ("司美格鲁肽", "0.25 mg，每周一次皮下注射", "1 mg，每周一次", "恶心、食欲下降"),
                  ("甘精胰岛素", "睡前10单位", "根据空腹血糖调整", "低血糖、体重增加"),
                  ("阿卡波糖", "50 mg，每日三次，随第一口饭嚼服", "100 mg，每日三次", "腹胀、排气增多")],
        "advice": ["控制总热量摄入，主食粗细搭配", "减少含糖饮料的摄入", "每周至少进行150分钟中等强度运动", "每天检查双足有无破损", "每年进行一次眼底筛查", "规律监测血糖并记录"],
        "complications": ["糖尿病视网膜病变", "糖尿病肾病", "周围神经病变", "糖尿病足", "冠心病", "脑卒中"],
        "risks": ["超重或肥胖", "缺乏运动", "糖尿病家族史", "妊娠期糖尿病史", "年龄增长", "长期高热量饮食"],
        "follow": "血糖未达标时每3个月检测一次糖化血红蛋白，达标后每6个月检测一次",
        "target": "多数成人糖化血红蛋白控制在7.0%以下，老年或低血糖风险高者可适当放宽",
        "red": ["恶心呕吐伴腹痛", "意识模糊或嗜睡", "血糖显著升高且尿酮体阳性", "反复发生严重低血糖"],
    },
    {
        "name": "支气管哮喘", "area": "呼吸内科",
        "definition": "由多种细胞和细胞组分参与的气道慢性炎症性疾病，表现为可逆性气流受限和气道高反应性",
        "symptoms": ["反复发作的喘息", "夜间或清晨咳嗽", "胸闷", "气促", "运动后症状加重"],
        "tests": ["肺功能检查及支气管舒张试验", "呼气峰流速监测", "呼出气一氧化氮测定", "血嗜酸性粒细胞计数", "过敏原检测"],
        "drugs": [("布地奈德福莫特罗", "按需吸入1吸", "每次2吸，每日两次维持", "声音嘶哑、口腔念珠菌感染"),
                  ("沙丁胺醇气雾剂", "按需吸入100至200微克", "急性发作时可重复使用", "手抖、心悸"),
                  ("孟鲁司特", "10 mg，每晚一次", "10 mg，每晚一次", "睡眠障碍、情绪改变"),
                  ("氟替卡松吸入剂", "100微克，每日两次", "250微克，每日两次", "声音嘶哑、口腔念珠菌感染")],
        "advice": ["随身携带缓解药物", "吸入激素后及时漱口", "避免接触烟雾、尘螨和花粉等诱发因素", "每次复诊时检查吸入装置使用方法", "每年接种流感疫苗"],
        "complications": ["重症哮喘急性发作", "呼吸衰竭", "气道重塑", "气胸"],
        "risks": ["过敏体质", "哮喘家族史", "吸烟或二手烟暴露", "职业性致敏物接触", "肥胖"],
        "follow": "病情稳定后每3个月复诊一次，急性发作后4周内复诊",
        "target": "白天症状轻微、无夜间憋醒、日常活动不受限",
        "red": ["说话不能成句", "血氧饱和度低于92%", "呼吸音明显减弱", "烦躁或意识模糊"],
    },
    {
        "name": "慢性阻塞性肺疾病", "area": "呼吸内科",
        "definition": "以持续性气流受限为特征的可以预防和治疗的常见慢性呼吸系统疾病，与长期吸烟等有害气体暴露密切相关",
        "symptoms": ["慢性咳嗽", "咳痰", "活动后气短", "喘息", "反复呼吸道感染"],
        "tests": ["吸入支气管舒张剂后的肺功能检查", "胸部X线或CT", "指脉氧饱和度", "动脉血气分析", "血常规"],
        "drugs": [("噻托溴铵", "18微克，每日一次吸入", "18微克，每日一次", "口干、排尿困难"),
                  ("茚达特罗", "150微克，每日一次吸入", "300微克，每日一次", "咳嗽、心悸"),
                  ("泼尼松", "急性加重期30 mg，每日一次，连用5天", "30 mg，每日一次", "血糖升高、情绪波动"),
                  ("多西环素", "首日200 mg，之后每日100 mg", "疗程5天", "光敏反应、胃肠不适")],
        "advice": ["彻底戒烟", "参加肺康复训练", "接种流感疫苗和肺炎球菌疫苗", "进行缩唇呼吸和腹式呼吸训练", "注意保暖，预防感冒"],
        "complications": ["急性加重", "慢性肺源性心脏病", "慢性呼吸衰竭", "自发性气胸", "营养不良"],
        "risks": ["长期吸烟", "生物燃料烟雾暴露", "职业粉尘接触", "儿童期反复呼吸道感染", "α1-抗胰蛋白酶缺乏"],
        "follow": "稳定期每3至6个月随访一次，每年复查肺功能",
        "target": "减少急性加重次数，改善活动耐力，延缓肺功能下降",
        "red": ["嗜睡加重", "口唇发绀", "静息时明显气促", "意识障碍"],
    },
    {
        "name": "社区获得性肺炎", "area": "呼吸内科",
        "definition": "在医院外罹患的肺实质感染性炎症，包括具有明确潜伏期的病原体感染在入院后潜伏期内发病的肺炎",
        "symptoms": ["发热", "咳嗽咳痰", "胸痛", "呼吸困难", "寒战", "精神萎靡"],
        "tests": ["胸部X线或CT", "血常规", "C反应蛋白", "降钙素原", "血培养", "痰涂片及培养"],
        "drugs": [("阿莫西林", "0.5 g，每日三次", "1 g，每日三次", "皮疹、腹泻"),
                  ("阿奇霉素", "0.5 g，每日一次", "疗程3至5天", "胃肠道反应、QT间期延长"),
                  ("左氧氟沙星", "0.5 g，每日一次", "0.75 g，每日一次", "肌腱损伤、血糖波动"),
                  ("头孢曲松", "1 g，静脉滴注，每日一次", "2 g，每日一次", "过敏反应、腹泻")],
        "advice": ["多饮水，保证充足休息", "按医嘱足疗程使用抗菌药物", "体温不退或症状加重时及时复诊", "按时接种肺炎球菌疫苗", "戒烟"],
        "complications": ["脓毒症", "胸腔积液", "脓胸", "肺脓肿", "急性呼吸窘迫综合征"],
        "risks": ["高龄", "吸烟", "慢性肺部疾病", "糖尿病", "免疫功能低下", "长期卧床"],
        "follow": "治疗48至72小时后评估疗效，必要时调整抗菌药物",
        "target": "体温恢复正常，咳嗽和呼吸困难明显改善",
        "red": ["呼吸频率超过30次/分", "收缩压低于90 mmHg", "意识障碍", "血氧饱和度低于92%"],
    },
    {
        "name": "慢性心力衰竭", "area": "心血管内科",
        "definition": "由于心脏结构或功能异常导致心室充盈和（或）射血能力受损而引起的一组临床综合征",
        "symptoms": ["活动后呼吸困难", "夜间阵发性呼吸困难", "端坐呼吸", "双下肢水肿", "乏力", "食欲减退"],
        "tests": ["超声心动图", "N末端B型利钠肽原", "心电图", "胸部X线", "肾功能及电解质"],
        "drugs": [("呋塞米", "20 mg，每日一次", "根据容量状态调整", "脱水、低钾血症"),
                  ("比索洛尔", "1.25 mg，每日一次", "10 mg，每日一次", "心动过缓、乏力"),
                  ("沙库巴曲缬沙坦", "50 mg，每日两次", "200 mg，每日两次", "低血压、血钾升高"),
                  ("螺内酯", "20 mg，每日一次", "40 mg，每日一次", "高钾血症、男性乳房发育"),
                  ("恩格列净", "10 mg，每日一次", "10 mg，每日一次", "生殖器感染、血容量不足")],
        "advice": ["每天早晨空腹称体重", "3天内体重增加超过2公斤时及时就诊", "限制钠盐摄入", "避免使用非甾体抗炎药", "在医生指导下进行心脏康复运动"],
        "complications": ["急性失代偿", "恶性心律失常", "心源性猝死", "肾功能恶化", "心源性恶病质"],
        "risks": ["冠心病", "长期高血压", "心脏瓣膜病", "糖尿病", "长期大量饮酒"],
        "follow": "药物剂量调整期每2周随访一次，稳定后每3个月随访一次",
        "target": "缓解淤血症状，将指南推荐药物逐步调整至最大耐受剂量",
        "red": ["静息时呼吸困难", "胸痛", "晕厥", "体重快速增加伴水肿加重"],
    },
    {
        "name": "心房颤动", "area": "心血管内科",
        "definition": "心房失去有序电活动而代之以快速无序颤动的一种常见心律失常",
        "symptoms": ["心悸", "脉搏不齐", "胸闷", "气短", "头晕", "活动耐量下降"],
        "tests": ["十二导联心电图", "24小时动态心电图", "超声心动图", "甲状腺功能", "肾功能"],
        "drugs": [("利伐沙班", "20 mg，每日一次，随餐服用", "20 mg，每日一次", "出血"),
                  ("达比加群酯", "150 mg，每日两次", "150 mg，每日两次", "出血、消化不良"),
                  ("美托洛尔", "12.5 mg，每日两次", "100 mg，每日两次", "心动过缓、乏力"),
                  ("地尔硫䓬", "30 mg，每日三次", "每日360 mg分次服用", "下肢水肿、便秘")],
        "advice": ["每天固定时间服用抗凝药", "注意观察有无牙龈出血、黑便等出血表现", "限制饮酒", "控制好血压和血糖", "积极治疗睡眠呼吸暂停"],
        "complications": ["缺血性脑卒中", "体循环栓塞", "心动过速性心肌病", "心力衰竭"],
        "risks": ["高龄", "高血压", "心力衰竭", "心脏瓣膜病", "肥胖", "长期饮酒"],
        "follow": "每年至少评估一次卒中风险、出血风险和心室率控制情况",
        "target": "静息心室率低于110次/分，并有效预防血栓栓塞",
        "red": ["晕厥", "胸痛", "突发肢体无力或言语障碍", "心率持续超过150次/分"],
    },
    {
        "name": "慢性肾脏病", "area": "肾内科",
        "definition": "肾脏结构或功能异常持续超过3个月，常表现为估算肾小球滤过率下降或白蛋白尿",
        "symptoms": ["乏力", "水肿", "皮肤瘙痒", "食欲减退", "夜尿增多", "泡沫尿"],
        "tests": ["估算肾小球滤过率", "尿白蛋白/肌酐比值", "泌尿系超声", "血钾及二氧化碳结合力", "血常规", "血钙磷及甲状旁腺激素"],
        "drugs": [("贝那普利", "10 mg，每日一次", "20 mg，每日一次", "干咳、血钾升高"),
                  ("达格列净", "10 mg，每日一次", "10 mg，每日一次", "生殖器感染、血容量不足"),
                  ("阿托伐他汀", "20 mg，每晚一次", "40 mg，每晚一次", "肌肉酸痛"),
                  ("碳酸氢钠片", "0.5 g，每日三次", "根据血碳酸氢根调整", "腹胀")],
        "advice": ["避免自行服用止痛药和来源不明的中草药", "控制血压和血糖达标", "优质低蛋白饮食", "新用药物前咨询医生或药师", "定期复查肾功能"],
        "complications": ["终末期肾病", "心血管疾病", "肾性贫血", "矿物质和骨代谢异常", "高钾血症"],
        "risks": ["糖尿病", "高血压", "高龄", "肾脏病家族史", "反复急性肾损伤"],
        "follow": "根据分期每3至12个月复查估算肾小球滤过率和尿白蛋白",
        "target": "延缓肾功能下降，降低心血管事件风险",
        "red": ["尿量突然明显减少", "血钾高于6.0 mmol/L", "严重水肿伴呼吸困难", "意识改变"],
    },
    {
        "name": "甲状腺功能减退症", "area": "内分泌科",
        "definition": "由于甲状腺激素合成和分泌减少或组织作用减弱导致的全身代谢减低综合征",
        "symptoms": ["乏力", "怕冷", "体重增加", "便秘", "皮肤干燥", "记忆力减退", "情绪低落"],
        "tests": ["促甲状腺激素", "游离甲状腺素", "甲状腺过氧化物酶抗体", "甲状腺超声", "血脂"],
        "drugs": [("左甲状腺素钠", "25至50微克，每日一次晨起空腹服用", "约每日每公斤体重1.6微克", "替代过量时可出现心悸、失眠")],
        "advice": ["每天早晨空腹服药，服药后半小时再进食", "与钙剂、铁剂间隔4小时以上服用", "计划妊娠或已妊娠时及时告知医生", "调整剂量后按时复查甲状腺功能"],
        "complications": ["高脂血症", "不孕", "黏液性水肿昏迷", "不良妊娠结局"],
        "risks": ["女性", "自身免疫性疾病", "甲状腺手术史", "放射性碘治疗史", "高龄"],
        "follow": "每次调整剂量后6至8周复查促甲状腺激素，稳定后每年复查一次",
        "target": "促甲状腺激素维持在参考范围内，症状消失",
        "red": ["明显嗜睡", "体温过低", "心率缓慢伴意识模糊"],
    },
    {
        "name": "偏头痛", "area": "神经内科",
        "definition": "一种常见的原发性头痛，表现为反复发作的中重度搏动性头痛，常伴恶心和畏光畏声",
        "symptoms": ["单侧搏动性头痛", "恶心", "呕吐", "畏光", "畏声", "视觉先兆", "日常活动后头痛加重"],
        "tests": ["头痛日记", "详细的神经系统查体", "眼底检查", "血压测量"],
        "drugs": [("布洛芬", "发作时400 mg", "400 mg，每日最多三次", "胃部不适"),
                  ("舒马普坦", "发作早期50 mg", "单次100 mg", "胸部紧缩感、肢体麻木"),
                  ("氟桂利嗪", "5 mg，每晚一次预防发作", "10 mg，每晚一次", "嗜睡、体重增加"),
                  ("普萘洛尔", "10 mg，每日两次预防发作", "40 mg，每日两次", "乏力、手足发凉")],
        "advice": ["保持规律睡眠和饮食", "每月使用止痛药不超过10天", "识别并避免个人诱发因素", "适量饮水", "坚持记录头痛日记"],
        "complications": ["药物过量性头痛", "慢性偏头痛", "偏头痛持续状态"],
        "risks": ["女性", "偏头痛家族史", "睡眠不规律", "精神压力大", "激素水平变化"],
        "follow": "预防性治疗2至3个月后结合头痛日记评估疗效",
        "target": "头痛天数减少50%以上",
        "red": ["突发剧烈雷击样头痛", "头痛伴发热和颈强直", "新发神经功能缺损", "50岁以后新发头痛"],
    },
    {
        "name": "胃食管反流病", "area": "消化内科",
        "definition": "胃十二指肠内容物反流入食管引起烧心等不适症状和（或）并发症的一种疾病",
        "symptoms": ["烧心", "反酸", "餐后胸骨后不适", "慢性咳嗽", "声音嘶哑", "咽部异物感"],
        "tests": ["胃镜检查", "上消化道造影", "24小时食管pH阻抗监测"],
        "drugs": [("奥美拉唑", "20 mg，每日一次，早餐前服用", "20 mg，每日两次", "头痛、腹泻"),
                  ("雷贝拉唑", "10 mg，每日一次", "20 mg，每日一次", "头痛、腹泻"),
                  ("铝碳酸镁", "1 g，每日三次，餐后嚼服", "每日最多四次", "便秘"),
                  ("莫沙必利", "5 mg，每日三次，餐前服用", "5 mg，每日三次", "腹泻、口干")],
        "advice": ["避免睡前3小时内进食", "抬高床头15至20厘米", "超重者应减轻体重", "减少咖啡、浓茶、酒精和油腻食物", "戒烟"],
        "complications": ["反流性食管炎", "食管狭窄", "Barrett食管", "上消化道出血"],
        "risks": ["肥胖", "食管裂孔疝", "妊娠", "吸烟", "饱餐后立即平卧"],
        "follow": "治疗4至8周后复诊，逐步减量至最低有效剂量",
        "target": "以最低有效剂量控制症状",
        "red": ["吞咽困难", "不明原因体重下降", "呕血", "黑便"],
    },
    {
        "name": "膝骨关节炎", "area": "骨科",
        "definition": "以关节软骨退行性变和继发性骨质增生为特征的慢性关节疾病",
        "symptoms": ["活动后关节疼痛", "晨僵时间少于30分钟", "关节弹响", "关节活动受限", "上下楼梯困难"],
        "tests": ["体格检查", "膝关节负重位X线片", "炎症指标以排除其他关节炎"],
        "drugs": [("双氯芬酸钠凝胶", "局部涂抹，每日三次", "每日四次", "局部皮肤刺激"),
                  ("对乙酰氨基酚", "0.5 g，必要时服用", "每日不超过2 g", "过量时肝损伤"),
                  ("塞来昔布", "200 mg，每日一次", "200 mg，每日一次", "消化不良、心血管风险")],
        "advice": ["进行股四头肌力量训练", "超重者减轻体重", "选择游泳、骑自行车等低冲击运动", "避免长时间爬楼梯和蹲跪", "必要时使用手杖"],
        "complications": ["慢性疼痛", "活动能力下降", "跌倒", "关节畸形"],
        "risks": ["高龄", "肥胖", "膝关节外伤史", "女性", "长期重体力劳动"],
        "follow": "每隔数月评估疼痛程度、关节功能和锻炼依从性",
        "target": "减轻疼痛，改善关节功能，尽可能推迟手术",
        "red": ["关节红肿热痛伴发热", "外伤后无法负重", "关节畸形快速进展"],
    },
    {
        "name": "抑郁症", "area": "精神心理科",
        "definition": "以显著而持久的心境低落和兴趣减退为主要特征的心境障碍，持续至少两周并影响社会功能",
        "symptoms": ["情绪低落", "兴趣减退", "睡眠障碍", "注意力不集中", "疲乏", "自我评价过低", "食欲改变"],
        "tests": ["PHQ-9抑郁量表", "自杀风险评估", "甲状腺功能", "血常规"],
        "drugs": [("舍曲林", "50 mg，每日一次", "200 mg，每日一次", "恶心、睡眠障碍"),
                  ("艾司西酞普兰", "10 mg，每日一次", "20 mg，每日一次", "恶心、出汗"),
                  ("米氮平", "15 mg，每晚一次", "45 mg，每晚一次", "体重增加、嗜睡")],
        "advice": ["保持规律的日常作息", "每天进行适量体育活动", "与亲友保持联系", "避免饮酒", "症状缓解后继续服药至少6个月"],
        "complications": ["自伤", "自杀", "工作和社会功能受损", "物质滥用"],
        "risks": ["既往发作史", "抑郁症家族史", "慢性躯体疾病", "社会支持不足", "重大负性生活事件"],
        "follow": "开始抗抑郁药治疗后2周内复诊，前3个月每2至4周随访一次",
        "target": "症状完全缓解，恢复正常社会功能",
        "red": ["有具体计划的自杀观念", "精神病性症状", "拒食拒饮", "严重激越"],
    },
    {
        "name": "缺铁性贫血", "area": "血液科",
        "definition": "体内贮存铁缺乏导致血红蛋白合成减少而引起的小细胞低色素性贫血",
        "symptoms": ["乏力", "面色苍白", "活动后心悸气短", "头晕", "指甲变脆", "异食癖"],
        "tests": ["血常规", "血清铁蛋白", "血清铁及总铁结合力", "粪便潜血试验", "胃肠镜检查"],
        "drugs": [("硫酸亚铁", "0.3 g，每日一次或隔日一次", "0.3 g，每日一次", "便秘、黑便"),
                  ("多糖铁复合物", "150 mg，每日一次", "150 mg，每日两次", "胃肠不适"),
                  ("蔗糖铁注射液", "按体重计算总补铁量分次静脉滴注", "按计算剂量", "输注反应")],
        "advice": ["避免铁剂与浓茶同服", "多吃瘦肉、动物肝脏、豆类等富含铁的食物", "血红蛋白正常后继续补铁3个月", "月经量过多时及时就诊"],
        "complications": ["心力衰竭", "不良妊娠结局", "儿童生长发育迟缓"],
        "risks": ["月经过多", "妊娠", "素食", "慢性消化道失血", "吸收不良"],
        "follow": "治疗2至4周后复查血常规",
        "target": "治疗4周内血红蛋白上升约20 g/L",
        "red": ["便血", "不明原因体重下降", "静息时气短", "胸痛"],
    },
    {
        "name": "痛风", "area": "风湿免疫科",
        "definition": "单钠尿酸盐晶体沉积于关节及周围组织所致的炎症性关节病，与高尿酸血症直接相关",
        "symptoms": ["夜间突发关节剧痛", "第一跖趾关节红肿", "关节局部皮温升高", "触痛明显", "24小时内疼痛达高峰"],
        "tests": ["血尿酸", "关节液偏振光显微镜检查", "关节超声或双能CT", "肾功能", "血糖和血脂"],
        "drugs": [("秋水仙碱", "首剂1 mg，1小时后再服0.5 mg", "之后0.5 mg，每日一至两次", "腹泻"),
                  ("依托考昔", "120 mg，每日一次，急性期使用", "疗程不超过8天", "消化不良、血压升高"),
                  ("别嘌醇", "100 mg，每日一次", "根据血尿酸逐渐加量", "皮疹"),
                  ("非布司他", "20 mg，每日一次", "80 mg，每日一次", "肝酶升高")],
        "advice": ["限制饮酒，尤其是啤酒", "减少动物内脏、海鲜和含糖饮料的摄入", "每日饮水2000毫升以上", "超重者控制体重", "急性发作期间不要自行停用降尿酸药物"],
        "complications": ["痛风石", "慢性痛风性关节炎", "尿酸性肾结石", "关节破坏"],
        "risks": ["男性", "肥胖", "大量饮酒", "使用利尿剂", "慢性肾脏病"],
        "follow": "降尿酸治疗期间每4周检测一次血尿酸，达标后每3至6个月复查",
        "target": "血尿酸控制在360 μmol/L以下，有痛风石者控制在300 μmol/L以下",
        "red": ["发热伴关节红肿", "多关节同时受累", "人工关节肿痛"],
    },
    {
        "name": "骨质疏松症", "area": "内分泌科",
        "definition": "以骨量减少、骨组织微结构破坏为特征，导致骨脆性增加和易发生骨折的全身性骨病",
        "symptoms": ["活动后腰背酸痛", "腰背疼痛", "身高变矮", "驼背", "轻微外力下发生骨折"],
        "tests": ["双能X线骨密度测定", "骨折风险评估工具评分", "血钙、血磷及25羟维生素D", "肝肾功能", "骨转换标志物"],
        "drugs": [("阿仑膦酸钠", "70 mg，每周一次", "70 mg，每周一次", "食管刺激"),
                  ("唑来膦酸", "5 mg，每年一次静脉滴注", "5 mg，每年一次", "流感样症状"),
                  ("地舒单抗", "60 mg，每6个月皮下注射一次", "60 mg，每6个月一次", "低钙血症"),
                  ("钙剂和维生素D", "元素钙600 mg加维生素D 800单位，每日一次", "同上", "便秘")],
        "advice": ["服用阿仑膦酸钠时用一满杯白水送服，服药后30分钟内保持直立", "坚持负重运动和抗阻训练", "居家环境做好防跌倒措施", "戒烟限酒", "适当晒太阳"],
        "complications": ["髋部骨折", "椎体压缩性骨折", "腕部骨折", "慢性疼痛", "生活自理能力下降"],
        "risks": ["高龄", "绝经后女性", "长期使用糖皮质激素", "低体重", "既往脆性骨折史"],
        "follow": "双膦酸盐治疗3至5年后重新评估骨折风险",
        "target": "降低骨折风险",
        "red": ["突发剧烈腰背痛", "跌倒后无法站立", "下颌疼痛或骨外露"],
    },
]

ZH_POPS = ["老年患者", "合并多种慢性病的患者", "基层就诊患者", "中青年患者", "衰弱老人", "肝肾功能不全患者"]
ZH_SETTINGS = ["在基层医疗机构", "在急诊科", "在门诊", "在住院病房", "在社区卫生服务中心", "在全科门诊"]
ZH_EVIDENCE = ["推荐等级A，证据质量高", "推荐等级B，证据质量中等", "推荐等级C，证据质量低", "专家共识", "推荐等级B，证据质量低"]
ZH_DUR = ["3天", "1周", "2周", "半个月", "1个月", "3个月", "半年", "1年", "3年"]
ZH_JOBS = ["公交车司机", "公司职员", "农民", "护士", "个体经营者", "建筑工人", "会计", "厨师", "中学教师", "快递员"]
ZH_SEX = ["男", "女"]
ZH_OLD_POPS = ["老年患者", "衰弱老人", "肝肾功能不全患者", "高龄患者"]
ZH_JOBS_YOUNG = ["大学生", "研究生", "外卖骑手"]
ZH_JOBS_RETIRED = ["退休教师", "退休工人", "农民", "退休干部"]

ZH_SHORT_TEMPLATES = [
    "{name}常见的临床表现包括{s1}、{s2}和{s3}，但部分患者早期可无明显症状。",
    "{name}患者应{adv}。",
    "{drug}的常用起始剂量为{dose}，可根据疗效和耐受性调整至{max}。",
    "未经规范治疗的{name}可导致{c1}和{c2}等严重并发症。",
    "诊断{name}需结合病史、体格检查以及{t1}等辅助检查。",
    "{drug}常见的不良反应包括{ae}。",
    "{risk}是{name}的重要危险因素。",
    "{name}患者一旦出现{red}，应立即就医。",
    "对于多数{name}患者，治疗目标是{target}。",
    "{name}是指{definition}。",
    "{pop_old}中{name}的表现往往不典型，应适当放宽{t1}的指征。",
    "使用{drug}前应评估药物相互作用，并完善{t1}。",
    "建议{name}患者{follow}。",
    "出现{s1}且有{risk}的人群，应警惕{name}的可能。",
]

ZH_PARA_OPENERS = [
    "{name}是指{definition}。",
    "{name}是{setting}最常见的慢性病之一。",
    "本文简要介绍{pop}{name}的评估与管理要点。",
    "随着人口老龄化，{name}的患病率逐年上升，已成为重要的公共卫生问题。",
]

ZH_BODY_TEMPLATES = [
    "典型症状包括{s1}、{s2}和{s3}。",
    "很多患者最先注意到的是{s1}，并可伴有{s2}。",
    "主要危险因素有{r1}、{r2}和{r3}。",
    "初诊时应完善{t1}和{t2}。",
    "必要时可进一步完善{t1}，以协助诊断和评估并发症。",
    "一线治疗药物常选用{drug}，起始剂量为{dose}，必要时可加量至{max}。",
    "单药控制不佳时可联合{drug}，其常见不良反应为{ae}。",
    "应建议患者{adv1}，同时{adv2}。",
    "生活方式干预是治疗的基础，患者应{adv1}。",
    "如果不及时治疗，{name}可能进展为{c1}或{c2}。",
    "随访方面，建议{follow}。",
    "治疗目标为{target}。",
    "如出现{red1}或{red2}，应立即就医。",
    "医生应与患者充分沟通{drug}的获益与风险，共同制定治疗方案。",
    "患者依从性往往不佳，每次复诊都应询问漏服情况和{drug}的不良反应。",
    "{pop_old}用药剂量应酌情减少，并增加监测频率。",
    "{name}常合并{other}，应同时进行管理。",
    "出现{red1}提示病情较重，应及时转诊。",
    "{setting}开展规范化随访，有助于及时调整用药和管理目标。",
    "应向患者提供书面健康教育材料，以加深对{name}的认识。",
]

ZH_CASE_TEMPLATES = [
    "患者，{sex}，{age}岁，{job}，因“{s1}{dur}”{setting}就诊。",
    "患者近{dur}来还出现{s2}，无明显诱因。",
    "既往有{other}病史，{risk}。",
    "查体生命体征平稳，结合症状考虑{name}。",
    "完善{t1}和{t2}后，诊断{name}明确。",
    "给予{drug}治疗，剂量为{dose}。",
    "同时嘱患者{adv1}，并{adv2}。",
    "{weeks}周后复诊，症状明显缓解，仅有轻微{ae_short}。",
    "后续计划{follow}。",
    "已告知患者如出现{red1}应立即返院。",
]

ZH_GUIDE_SECTIONS = [
    ("适用范围", [
        "本指南适用于{pop}{name}的识别、诊断和管理。",
        "本指南的使用对象为{setting}工作的临床医生、护士和药师。",
        "制定本指南的目的是规范诊疗行为，减少{c1}和{c2}等不良结局。",
        "除特别说明外，本指南不适用于儿童和妊娠期女性。",
        "各条推荐意见均根据证据质量进行了分级。",
    ]),
    ("定义与流行病学", [
        "{name}是指{definition}。",
        "{name}患病率随年龄增长而升高。",
        "主要危险因素包括{r1}、{r2}和{r3}。",
        "由于早期症状不明显，相当一部分患者未被及时诊断。",
        "{name}常与{other}并存，增加了治疗决策的复杂性。",
        "我国{name}的知晓率、治疗率和控制率仍有较大提升空间。",
    ]),
    ("临床表现", [
        "典型临床表现包括{s1}、{s2}和{s3}。",
        "{pop_old}症状可不典型，有时仅表现为{s1}。",
        "病史采集应重点询问{s2}的持续时间、诱因及缓解因素。",
        "应特别注意询问有无{red1}和{red2}。",
        "体格检查应记录生命体征、体重指数以及{c1}相关体征。",
    ]),
    ("诊断与辅助检查", [
        "对疑似{name}的患者，推荐完善{t1}等检查进行初始评估。",
        "初步评估不能确诊时，可考虑行{t2}。",
        "不应仅凭单次异常结果诊断{name}，应复查确认。",
        "启动药物治疗前应完善{t3}作为基线。",
        "经初步检查仍不能明确诊断者，建议转诊至上级医院专科。",
        "检查结果应清楚记录并向患者解释。",
    ]),
    ("非药物治疗", [
        "建议所有患者{adv1}。",
        "鼓励患者{adv2}，有条件时可参加结构化健康管理项目。",
        "应向患者说明，生活方式干预对部分患者单独有效，对其他患者可增强药物疗效。",
        "可根据需要转介营养师、康复治疗师或心理咨询师。",
        "每次随访时评估生活方式目标的完成情况，并与患者共同制定新的目标。",
    ]),
    ("药物治疗", [
        "推荐{drug}作为一线治疗，起始剂量为{dose}。",
        "根据疗效和耐受性，{drug}可逐步调整至{max}。",
        "应告知患者{drug}常见不良反应包括{ae}。",
        "疗效不佳时，可考虑联合{drug2}，剂量为{dose2}。",
        "开始用药或调整剂量后2周内应复查肾功能和血钾。",
        "避免联合使用作用机制相同的药物。",
        "对于衰弱老人，当治疗风险大于获益时应适当减少用药。",
        "在升级治疗前，应先核实患者的用药依从性和用药方法。",
    ]),
    ("随访与监测", [
        "建议{follow}。",
        "大多数患者的治疗目标为{target}。",
        "可通过{t1}评估治疗效果。",
        "每次随访均应记录不良反应、用药依从性和患者自评结局。",
        "应制定个体化管理计划，并至少每年评估一次。",
        "对于就诊不便的患者，可考虑采用远程监测。",
    ]),
    ("转诊与急症处理", [
        "{name}患者出现{red1}时应紧急转诊。",
        "出现{red2}者应当日评估。",
        "经规范治疗仍控制不佳者，建议转诊至{area}。",
        "合并{c1}或严重合并症者，应寻求专科意见。",
        "出院小结应包括目前用药和随访计划。",
    ]),
    ("特殊人群", [
        "{pop_old}应从小剂量开始用药，缓慢加量。",
        "妊娠期{name}患者应与产科共同管理。",
        "肾功能减退者应根据估算肾小球滤过率调整药物剂量。",
        "应综合考虑认知功能、衰弱程度以及患者本人的意愿。",
        "合并{other}的患者，应尽量选择对两种疾病均有益的治疗方案。",
    ]),
    ("健康教育", [
        "应向患者解释{name}的基本知识及其对日常生活的影响。",
        "说明{drug}的用药目的、获益和可能的不良反应。",
        "鼓励患者{adv1}，并{adv2}。",
        "告知患者如出现{red1}应立即就医。",
        "向患者提供医疗团队的联系方式和患者互助组织信息。",
    ]),
]

# ---------------------------------------------------------------------------
# English general / public-health material for the guidelines file
# ---------------------------------------------------------------------------

GEN_TOPICS = [
    {
        "topic": "hand hygiene",
        "facts": [
            "Hand hygiene is the single most effective measure for preventing the spread of infection in health care settings.",
            "Alcohol-based hand rub should be used for routine decontamination when the hands are not visibly soiled.",
            "Hands should be washed with soap and water when they are visibly dirty or after caring for patients with diarrhoea.",
            "Staff should clean their hands before touching a patient, before aseptic procedures, after body fluid exposure, after touching a patient and after touching the patient's surroundings.",
            "Nails should be kept short and free of artificial extensions in clinical areas.",
            "Wrist watches and hand jewellery other than a plain band should be removed before clinical care.",
            "Regular audit of hand hygiene compliance, with feedback to teams, improves performance.",
            "Hand rub dispensers should be available at the point of care.",
        ],
    },
    {
        "topic": "healthy eating",
        "facts": [
            "A balanced diet is based on vegetables, fruit, whole grains, legumes and nuts.",
            "Adults should aim to eat at least five portions of fruit and vegetables every day.",
            "Reducing free sugars to less than ten percent of total energy intake lowers the risk of tooth decay and weight gain.",
            "Replacing saturated fats with unsaturated fats helps to lower blood cholesterol.",
            "Salt intake for adults should be kept below five grams per day.",
            "Drinking water is the best choice for staying hydrated.",
            "Regular meals and mindful portion sizes support a stable body weight.",
            "Processed meat should be eaten only occasionally.",
        ],
    },
    {
        "topic": "physical activity",
        "facts": [
            "Adults should do at least 150 minutes of moderate-intensity activity or 75 minutes of vigorous activity each week.",
            "Muscle-strengthening activities should be done on two or more days a week.",
            "Long periods of sitting should be broken up with short bouts of movement.",
            "Older adults benefit from balance and coordination exercises that reduce the risk of falls.",
            "Any amount of activity is better than none, and benefits increase with more activity.",
            "Walking, cycling and gardening all count towards weekly activity targets.",
            "People with long-term conditions should be encouraged to stay active with advice tailored to their condition.",
        ],
    },
    {
        "topic": "sleep",
        "facts": [
            "Most adults need between seven and nine hours of sleep each night.",
            "Keeping a regular sleep schedule, even at weekends, improves sleep quality.",
            "The bedroom should be quiet, dark and cool.",
            "Caffeine and alcohol in the evening disrupt sleep.",
            "Screens should be switched off at least an hour before bedtime.",
            "Persistent insomnia is best treated first with cognitive behavioural therapy rather than sleeping tablets.",
            "Loud snoring with pauses in breathing may indicate obstructive sleep apnoea and should be assessed.",
        ],
    },
    {
        "topic": "vaccination",
        "facts": [
            "Vaccination is one of the most cost-effective public health interventions available.",
            "Annual influenza vaccination is recommended for older adults, pregnant women and people with chronic illness.",
            "Health care workers should be vaccinated to protect both themselves and their patients.",
            "Vaccines must be stored between two and eight degrees Celsius, and the cold chain must be monitored.",
            "Any suspected adverse event following immunisation should be reported.",
            "Clear, honest communication helps to address vaccine hesitancy.",
            "Catch-up vaccination should be offered to people who have missed scheduled doses.",
        ],
    },
    {
        "topic": "medication safety",
        "facts": [
            "Medication errors are a leading cause of avoidable harm in health care.",
            "Prescriptions should be legible, include the indication and avoid unapproved abbreviations.",
            "Medicines reconciliation should be completed within 24 hours of hospital admission.",
            "High-risk medicines such as anticoagulants, insulin and opioids need extra checks.",
            "Patients should be given an up-to-date list of their medicines at discharge.",
            "Look-alike and sound-alike drug names should be stored apart.",
            "Near misses should be reported so that the system can learn from them.",
        ],
    },
    {
        "topic": "falls prevention",
        "facts": [
            "Falls are a major cause of injury and loss of independence in older people.",
            "Every older person who has fallen should be asked about the circumstances and frequency of falls.",
            "A multifactorial assessment includes gait, balance, vision, medicines and home hazards.",
            "Strength and balance training reduces the rate of falls.",
            "Medicines that cause sedation or low blood pressure should be reviewed.",
            "Good lighting, secure rugs and grab rails make homes safer.",
            "Footwear should fit well and have a non-slip sole.",
        ],
    },
    {
        "topic": "tobacco cessation",
        "facts": [
            "Stopping smoking at any age brings substantial health benefits.",
            "Every clinical contact is an opportunity to ask about smoking and advise quitting.",
            "Combination nicotine replacement therapy is more effective than a single product.",
            "Behavioural support together with medication gives the best chance of success.",
            "Withdrawal symptoms usually peak in the first week and fade over a month.",
            "Relapse is common and should be treated as part of the process of quitting.",
        ],
    },
    {
        "topic": "heat and cold weather health",
        "facts": [
            "Older adults, infants and people with chronic illness are most at risk during heatwaves.",
            "During hot weather, people should drink regularly and stay out of the sun at the hottest time of day.",
            "Some medicines, including diuretics, increase the risk of dehydration in hot weather.",
            "Cold homes increase the risk of respiratory infection, heart attack and stroke.",
            "Neighbours and relatives should check on vulnerable people during extreme weather.",
            "Heat exhaustion causes headache, dizziness, heavy sweating and nausea and should be treated promptly.",
        ],
    },
    {
        "topic": "clinical documentation",
        "facts": [
            "Clinical records should be accurate, timely and written in plain language.",
            "Each entry should include the date, time, author and role.",
            "Abbreviations should be avoided unless they are widely understood.",
            "Records should document the reasoning behind clinical decisions, not only the decisions themselves.",
            "Information shared with the patient should be recorded.",
            "Corrections should be clearly marked without obscuring the original entry.",
        ],
    },
    {
        "topic": "antimicrobial stewardship",
        "facts": [
            "Antibiotics should be prescribed only when a bacterial infection is likely.",
            "Samples for culture should be taken before antibiotics are started whenever possible.",
            "The indication, duration and review date should be documented for every antibiotic prescription.",
            "Intravenous antibiotics should be reviewed within 48 to 72 hours and switched to oral treatment when appropriate.",
            "Shorter courses are as effective as longer courses for many common infections.",
            "Delayed prescribing can reduce unnecessary antibiotic use for self-limiting respiratory infections.",
            "Local resistance patterns should guide empirical antibiotic choice.",
        ],
    },
]

GEN_CONNECTORS = ["In addition,", "Furthermore,", "In practice,", "As a general rule,", "Importantly,", "For this reason,", "Where possible,", "Equally,"]
GEN_PREFIXES = [
    "This leaflet explains the essentials of {topic}.",
    "Good practice in {topic} benefits patients, families and staff alike.",
    "The following notes summarise current advice on {topic}.",
    "Many people ask how they can improve {topic} in everyday life.",
    "Local teams are asked to review their approach to {topic} each year.",
]
GEN_CLOSERS = [
    "Further information is available from your local health team.",
    "Teams should review these points regularly and adapt them to local needs.",
    "Small, consistent changes make the biggest difference over time.",
    "Ask a member of staff if anything in this information is unclear.",
    "These recommendations will be updated as new evidence becomes available.",
]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def cap(s):
    return s[:1].upper() + s[1:]


def sample(rng, seq, k):
    k = min(k, len(seq))
    return rng.sample(seq, k)


def en_fill(rng, d, diseases, extra=None):
    """Build a dict of filler values for English templates about disease d."""
    s = sample(rng, d["symptoms"], 3)
    while len(s) < 3:
        s.append(s[-1])
    t = sample(rng, d["tests"], 3)
    while len(t) < 3:
        t.append(t[0])
    r = sample(rng, d["risks"], 3)
    c = sample(rng, d["complications"], 2)
    while len(c) < 2:
        c.append(c[0])
    a = sample(rng, d["advice"], 2)
    red = sample(rng, d["red"], 2)
    while len(red) < 2:
        red.append(red[0])
    drugs = sample(rng, d["drugs"], 2)
    drug = drugs[0]
    drug2 = drugs[-1]
    others = [o["name"] for o in diseases if o["name"] != d["name"]]
    f = {
        "name": d["name"], "Name": cap(d["name"]),
        "definition": d["definition"], "area": d["area"],
        "s1": s[0], "s2": s[1], "s3": s[2], "S1": cap(s[0]),
        "t1": t[0], "t2": t[1], "t3": t[2],
        "r1": r[0], "r2": r[1], "r3": r[2],
        "risk": r[0], "Risk": cap(r[0]),
        "c1": c[0], "c2": c[1],
        "adv": a[0], "adv1": a[0], "adv2": a[-1],
        "red": red[0], "red1": red[0], "red2": red[1],
        "drug": drug[0], "Drug": cap(drug[0]), "dose": drug[1], "max": drug[2], "ae": drug[3],
        "ae_short": drug[3].split(" and ")[0].split(",")[0],
        "drug2": drug2[0], "dose2": drug2[1],
        "follow": d["follow"], "target": d["target"],
        "other": rng.choice(others),
        "pop_old": rng.choice(EN_OLD_GROUPS),
    }
    if extra:
        f.update(extra)
    return f


def pick_job(rng, age, young, working, retired):
    if age < 24:
        return rng.choice(young)
    if age >= 65:
        return rng.choice(retired)
    return rng.choice(working)


def zh_fill(rng, d, diseases, extra=None):
    s = sample(rng, d["symptoms"], 3)
    t = sample(rng, d["tests"], 3)
    r = sample(rng, d["risks"], 3)
    c = sample(rng, d["complications"], 2)
    a = sample(rng, d["advice"], 2)
    red = sample(rng, d["red"], 2)
    while len(red) < 2:
        red.append(red[0])
    drugs = sample(rng, d["drugs"], 2)
    drug, drug2 = drugs[0], drugs[-1]
    others = [o["name"] for o in diseases if o["name"] != d["name"]]
    f = {
        "name": d["name"], "definition": d["definition"], "area": d["area"],
        "s1": s[0], "s2": s[1], "s3": s[2],
        "t1": t[0], "t2": t[1], "t3": t[2],
        "r1": r[0], "r2": r[1], "r3": r[2], "risk": r[0],
        "c1": c[0], "c2": c[1],
        "adv": a[0], "adv1": a[0], "adv2": a[1],
        "red": red[0], "red1": red[0], "red2": red[1],
        "drug": drug[0], "dose": drug[1], "max": drug[2], "ae": drug[3],
        "ae_short": drug[3].split("、")[0],
        "drug2": drug2[0], "dose2": drug2[1],
        "follow": d["follow"], "target": d["target"],
        "other": rng.choice(others),
        "pop_old": rng.choice(ZH_OLD_POPS),
    }
    if extra:
        f.update(extra)
    return f


# ---------------------------------------------------------------------------
# English document builders
# ---------------------------------------------------------------------------

def en_short(rng):
    while True:
        d = rng.choice(EN_DISEASES)
        f = en_fill(rng, d, EN_DISEASES, {"pop": rng.choice(EN_AGE_GROUPS)})
        text = rng.choice(EN_SHORT_TEMPLATES).format(**f)
        if 10 <= len(text.split()) <= 30:
            return text


def en_paragraph(rng, d=None, n=None):
    d = d or rng.choice(EN_DISEASES)
    n = n or rng.randint(4, 9)
    f = en_fill(rng, d, EN_DISEASES, {"pop": rng.choice(EN_AGE_GROUPS), "setting": rng.choice(EN_SETTINGS)})
    sents = [rng.choice(EN_PARA_OPENERS).format(**f)]
    for tpl in sample(rng, EN_BODY_TEMPLATES, n - 1):
        f = en_fill(rng, d, EN_DISEASES, {"pop": rng.choice(EN_AGE_GROUPS), "setting": rng.choice(EN_SETTINGS)})
        sents.append(tpl.format(**f))
    return " ".join(sents)


def en_case(rng):
    d = rng.choice(EN_DISEASES)
    age = rng.randint(19, 88)
    f = en_fill(rng, d, EN_DISEASES, {
        "age": age, "A": "An" if age in (8, 11, 18) or 80 <= age <= 89 else "A", "sex": rng.choice(EN_SEX), "job": pick_job(rng, age, EN_JOBS_YOUNG, EN_OCCUPATIONS, EN_JOBS_RETIRED),
        "dur": rng.choice(EN_DURATIONS), "setting": rng.choice(EN_SETTINGS),
        "weeks": rng.choice([2, 4, 6, 8, 12]),
    })
    sents = [tpl.format(**f) for tpl in EN_CASE_TEMPLATES if tpl is EN_CASE_TEMPLATES[0] or rng.random() < 0.85]
    return " ".join(sents)


def en_long(rng, target_chars, sep_section=" ", sep_para=" "):
    """Long guideline-like English document built from many sentences.

    The document is a compendium: one part per condition (in random order),
    each part walking through the guideline sections, until target_chars is
    reached.
    """
    pop = rng.choice(EN_AGE_GROUPS)
    setting = rng.choice(EN_SETTINGS)
    year = rng.randint(2015, 2024)
    order = sample(rng, EN_DISEASES, len(EN_DISEASES))
    if target_chars < 7000:
        title = "Clinical guideline: {} in {} ({} update).".format(cap(order[0]["name"]), pop, year)
    else:
        title = "Clinical guideline compendium: {} common conditions in {} ({} update).".format(
            rng.choice(["Managing", "Assessing and treating", "Diagnosis and care of"]), pop, year)
    parts = [title]
    total = len(title)
    rec_no = 0
    for part_no, d in enumerate(order, 1):
        if total >= target_chars:
            break
        head = "Part {}: {}.".format(part_no, cap(d["name"]))
        parts.append(head)
        total += len(head) + 1
        used = set()
        for sec_no, (name, tpls) in enumerate(EN_GUIDE_SECTIONS, 1):
            if total >= target_chars:
                break
            sents = []
            for tpl in sample(rng, tpls, rng.randint(3, len(tpls))):
                for _ in range(6):
                    f = en_fill(rng, d, EN_DISEASES, {"pop": pop, "setting": setting})
                    s = tpl.format(**f)
                    if s not in used:
                        break
                if s in used:
                    continue
                used.add(s)
                if name in ("Diagnosis and investigations", "Pharmacological management",
                            "Non-pharmacological management", "Referral and urgent care") and rng.random() < 0.6:
                    rec_no += 1
                    s = "Recommendation {}: {} ({}).".format(rec_no, s.rstrip("."), rng.choice(EN_EVIDENCE))
                sents.append(s)
            # sometimes add a narrative paragraph about the same condition
            if name in ("Definition and epidemiology", "Clinical presentation", "Patient information") and rng.random() < 0.5:
                sents.append(en_paragraph(rng, d=d, n=rng.randint(3, 6)))
            if sents:
                sec = "{}.{} {}.{}".format(part_no, sec_no, name, sep_para) + " ".join(sents)
                parts.append(sec)
                total += len(sec) + 1
    return sep_section.join(parts)


def build_en(rng):
    kinds = ["short"] * 55 + ["para"] * 45 + ["case"] * 20 + ["long"] * 30
    rng.shuffle(kinds)
    docs = []
    for k in kinds:
        if k == "short":
            docs.append(en_short(rng))
        elif k == "para":
            docs.append(en_paragraph(rng))
        elif k == "case":
            docs.append(en_case(rng))
        else:
            docs.append(en_long(rng, rng.randint(6000, 20000)))
    return docs


# ---------------------------------------------------------------------------
# Chinese document builders
# ---------------------------------------------------------------------------

def zh_short(rng):
    d = rng.choice(ZH_DISEASES)
    f = zh_fill(rng, d, ZH_DISEASES, {"pop": rng.choice(ZH_POPS)})
    return rng.choice(ZH_SHORT_TEMPLATES).format(**f)


def zh_paragraph(rng, d=None, n=None):
    d = d or rng.choice(ZH_DISEASES)
    n = n or rng.randint(4, 9)
    f = zh_fill(rng, d, ZH_DISEASES, {"pop": rng.choice(ZH_POPS), "setting": rng.choice(ZH_SETTINGS)})
    sents = [rng.choice(ZH_PARA_OPENERS).format(**f)]
    for tpl in sample(rng, ZH_BODY_TEMPLATES, n - 1):
        f = zh_fill(rng, d, ZH_DISEASES, {"pop": rng.choice(ZH_POPS), "setting": rng.choice(ZH_SETTINGS)})
        sents.append(tpl.format(**f))
    return "".join(sents)


def zh_case(rng):
    d = rng.choice(ZH_DISEASES)
    age = rng.randint(19, 88)
    f = zh_fill(rng, d, ZH_DISEASES, {
        "age": age, "sex": rng.choice(ZH_SEX), "job": pick_job(rng, age, ZH_JOBS_YOUNG, ZH_JOBS, ZH_JOBS_RETIRED),
        "dur": rng.choice(ZH_DUR), "setting": rng.choice(ZH_SETTINGS),
        "weeks": rng.choice([2, 4, 6, 8, 12]),
    })
    sents = [tpl.format(**f) for tpl in ZH_CASE_TEMPLATES if tpl is ZH_CASE_TEMPLATES[0] or rng.random() < 0.85]
    return "".join(sents)


ZH_NUMS = "一二三四五六七八九十"


def zh_num(n):
    if n <= 10:
        return ZH_NUMS[n - 1]
    if n < 20:
        return "十" + ZH_NUMS[n - 11]
    tens, ones = divmod(n, 10)
    return ZH_NUMS[tens - 1] + "十" + (ZH_NUMS[ones - 1] if ones else "")


def zh_long(rng, target_chars):
    """Long guideline-like Chinese document (one chapter per condition)."""
    pop = rng.choice(ZH_POPS)
    setting = rng.choice(ZH_SETTINGS)
    year = rng.randint(2015, 2024)
    order = sample(rng, ZH_DISEASES, len(ZH_DISEASES))
    if target_chars < 7000:
        title = "{}{}诊疗指南（{}年版）".format(pop, order[0]["name"], year)
    else:
        title = "{}常见慢性病{}（{}年版）".format(pop, rng.choice(["诊疗指南", "基层管理手册", "规范化诊治专家共识"]), year)
    parts = [title]
    total = len(title)
    rec_no = 0
    for ch_no, d in enumerate(order, 1):
        if total >= target_chars:
            break
        head = "第{}章　{}".format(zh_num(ch_no), d["name"])
        parts.append(head)
        total += len(head) + 1
        used = set()
        for sec_no, (name, tpls) in enumerate(ZH_GUIDE_SECTIONS, 1):
            if total >= target_chars:
                break
            sents = []
            for tpl in sample(rng, tpls, rng.randint(3, len(tpls))):
                for _ in range(6):
                    f = zh_fill(rng, d, ZH_DISEASES, {"pop": pop, "setting": setting})
                    s = tpl.format(**f)
                    if s not in used:
                        break
                if s in used:
                    continue
                used.add(s)
                if name in ("诊断与辅助检查", "药物治疗", "非药物治疗", "转诊与急症处理") and rng.random() < 0.6:
                    rec_no += 1
                    s = "推荐意见{}：{}（{}）。".format(rec_no, s.rstrip("。"), rng.choice(ZH_EVIDENCE))
                sents.append(s)
            if name in ("定义与流行病学", "临床表现", "健康教育") and rng.random() < 0.7:
                sents.append(zh_paragraph(rng, d=d, n=rng.randint(3, 6)))
            if sents:
                sec = "{}、{}\n".format(zh_num(sec_no), name) + "".join(sents)
                parts.append(sec)
                total += len(sec) + 1
    return "\n".join(parts)


def build_zh(rng):
    kinds = ["short"] * 55 + ["para"] * 45 + ["case"] * 22 + ["long"] * 28
    rng.shuffle(kinds)
    docs = []
    for k in kinds:
        if k == "short":
            docs.append(zh_short(rng))
        elif k == "para":
            docs.append(zh_paragraph(rng))
        elif k == "case":
            docs.append(zh_case(rng))
        else:
            docs.append(zh_long(rng, rng.randint(6000, 20000)))
    return docs


# ---------------------------------------------------------------------------
# General / guideline-style English builders
# ---------------------------------------------------------------------------

def gen_short(rng):
    t = rng.choice(GEN_TOPICS)
    return rng.choice(t["facts"])


def gen_paragraph(rng, t=None):
    t = t or rng.choice(GEN_TOPICS)
    facts = sample(rng, t["facts"], rng.randint(3, len(t["facts"])))
    sents = [rng.choice(GEN_PREFIXES).format(topic=t["topic"])]
    for i, s in enumerate(facts):
        if i > 0 and rng.random() < 0.3:
            s = rng.choice(GEN_CONNECTORS) + " " + s[:1].lower() + s[1:]
        sents.append(s)
    if rng.random() < 0.6:
        sents.append(rng.choice(GEN_CLOSERS))
    return " ".join(sents)


def gen_long(rng, target_chars):
    """Long mixed document: general health topics interleaved with clinical guideline sections."""
    org = rng.choice(["Regional Health Board", "Community Care Network", "District Hospital Trust", "Primary Care Collaborative"])
    year = rng.randint(2016, 2024)
    parts = ["{} handbook of health guidance, edition {}.".format(org, year)]
    chapter = 0
    while sum(len(p) + 2 for p in parts) < target_chars:
        chapter += 1
        if rng.random() < 0.55:
            t = rng.choice(GEN_TOPICS)
            body = "\n".join(gen_paragraph(rng, t) for _ in range(rng.randint(1, 3)))
            parts.append("Chapter {}: {}\n{}".format(chapter, cap(t["topic"]), body))
        else:
            body = en_long(rng, rng.randint(1500, 4000), sep_section="\n", sep_para="\n")
            parts.append("Chapter {}: Clinical summary\n{}".format(chapter, body))
    return "\n\n".join(parts)


def build_general(rng):
    kinds = ["short"] * 18 + ["para"] * 18 + ["medpara"] * 10 + ["long"] * 14
    rng.shuffle(kinds)
    docs = []
    for k in kinds:
        if k == "short":
            docs.append(gen_short(rng) if rng.random() < 0.6 else en_short(rng))
        elif k == "para":
            docs.append(gen_paragraph(rng))
        elif k == "medpara":
            docs.append(en_paragraph(rng))
        else:
            docs.append(gen_long(rng, rng.randint(6000, 18000)))
    return docs


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def write_lines(path, docs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for doc in docs:
            assert "\n" not in doc and doc.strip(), "plain-text documents must be single non-empty lines"
            fh.write(doc + "\n")


def write_jsonl(path, docs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for doc in docs:
            assert doc.strip()
            fh.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")


def main():
    rng = random.Random(SEED)
    en_docs = build_en(rng)
    zh_docs = build_zh(rng)
    gen_docs = build_general(rng)
    outputs = [
        (os.path.join(OUT_DIR, "medical_en.txt"), en_docs, write_lines),
        (os.path.join(OUT_DIR, "medical_zh.jsonl"), zh_docs, write_jsonl),
        (os.path.join(OUT_DIR, "guidelines", "general_en.jsonl"), gen_docs, write_jsonl),
    ]
    for path, docs, writer in outputs:
        writer(path, docs)
        lens = sorted(len(d) for d in docs)
        print("{}: {} docs, {} bytes, chars min/median/max = {}/{}/{}".format(
            os.path.relpath(path, os.path.dirname(HERE)), len(docs), os.path.getsize(path),
            lens[0], lens[len(lens) // 2], lens[-1]))


if __name__ == "__main__":
    main()
